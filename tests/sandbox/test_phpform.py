"""PHP semantics used by the fake: bracket forms, is_numeric, string casts."""
from __future__ import annotations

import pytest

from bitrix_app.sandbox.fake import phpform


def test_decode_builds_nested_arrays_like_parse_str():
    pairs = [("fields[title]", "T"), ("fields[settings][0][code]", "a"), ("fields[settings][1][code]", "b"),
             ("select[]", "id"), ("select[]", "title"), ("filter[>=id]", "2"), ("auth", "tok")]

    assert phpform.decode(pairs) == {
        "fields": {"title": "T", "settings": [{"code": "a"}, {"code": "b"}]},
        "select": ["id", "title"],
        "filter": {">=id": "2"},
        "auth": "tok",
    }


def test_encode_is_the_inverse_for_strings():
    data = {"event": "ONAPPTEST", "data": {"FIELDS": {"ID": "5"}}, "auth": {"member_id": "m"}, "list": ["a", "b"]}

    pairs = phpform.encode(data)

    assert pairs == [("event", "ONAPPTEST"), ("data[FIELDS][ID]", "5"), ("auth[member_id]", "m"),
                     ("list[0]", "a"), ("list[1]", "b")]
    assert phpform.decode(pairs) == data


@pytest.mark.parametrize("value, expected", [
    ("12", True), (" 12", True), ("4.5", True), ("1e3", True), ("-3", True), (7, True),
    ("abc", False), ("", False), (True, False), (None, False), ("0x1A", False),
])
def test_is_numeric(value, expected):
    assert phpform.is_numeric(value) is expected


def test_casts():
    assert phpform.to_int("4.5") == 4
    assert [phpform.to_string(value) for value in (True, False, None, 5, 2.0, [1])] == ["1", "", "", "5", "2", "Array"]
    assert phpform.is_empty("0") and phpform.is_empty([]) and not phpform.is_empty("a")
