import pytest

from bitrix_app.services import php_form


def test_decode_nested_bracket_keys():
    pairs = [
        ("event", "ONAPPUNINSTALL"),
        ("auth[member_id]", "abc"),
        ("data[FIELDS][ID]", "7"),
        ("select[]", "id"),
        ("select[]", "title"),
    ]
    assert php_form.decode(pairs) == {
        "event": "ONAPPUNINSTALL",
        "auth": {"member_id": "abc"},
        "data": {"FIELDS": {"ID": "7"}},
        "select": {"0": "id", "1": "title"},
    }


def test_encode_nested_params_round_trips_through_decode():
    from urllib.parse import parse_qsl

    params = {"id": 4, "fields": {"title": "A & B", "settings": {"host": "db.example.com"}}, "list": ["x", "y"]}
    encoded = php_form.encode(params)
    assert php_form.decode(parse_qsl(encoded)) == {
        "id": "4",
        "fields": {"title": "A & B", "settings": {"host": "db.example.com"}},
        "list": {"0": "x", "1": "y"},
    }


def test_encode_refuses_booleans_and_sends_none_as_empty():
    assert php_form.encode({"a": None}) == "a="
    with pytest.raises(ValueError, match="boolean"):
        php_form.encode({"fields": {"supportMapping": True}})


@pytest.mark.parametrize("params", [
    {"id": 1, "fields": {"settings": []}},  # would encode as just `id=1`: the clear would vanish
    {"id": 1, "fields": {}},
    {"id": 1, "fields": {"title": "x", "settings": [{"code": "a"}, {}]}},
])
def test_encode_refuses_empty_lists_and_mappings(params):
    with pytest.raises(ValueError, match="empty list or mapping"):
        php_form.encode(params)


def test_encode_of_no_parameters_is_empty():
    assert php_form.encode({}) == ""
