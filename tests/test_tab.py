"""The tab service on its own: permissions, secret masking, changed-fields-only updates.

Bitrix24 is replaced by an in-memory stub here; test_api.py runs the same paths against the fake.
"""
from __future__ import annotations

import copy

import pytest

from bitrix_app.services.errors import BitrixError, Rejected
from bitrix_app.services.session_tokens import TabSession
from bitrix_app.services.tab import (
    InvalidFields, TabService, changed_connector_fields, check_result, parse_id, present_source, url_check_outcome,
)
from bitrix_app.services.validation import URL_FIELDS, EndpointPolicy

CONNECTOR = {
    "id": 3, "title": "Warehouse", "description": "", "sort": 100, "logo": "https://c.example/logo.svg",
    "urlCheck": "https://c.example/check", "urlData": "https://c.example/data",
    "urlTableList": "https://c.example/tables", "urlTableDescription": "https://c.example/describe",
    "settings": [{"name": "Host", "code": "host", "type": "STRING"}, {"name": "Port", "code": "port", "type": "INT"},
                 {"name": "Token", "code": "token", "type": "STRING"}],
    "dateCreate": "2026-01-01 10:00:00", "supportMapping": False,
}
SOURCE = {
    "id": 8, "title": "Main", "description": "first", "type": "rest", "code": "rest_3", "active": True, "connectorId": 3,
    "dateCreate": "2026-01-01 10:00:00", "dateUpdate": "2026-01-01 10:00:00", "createdById": 1, "updatedById": 1,
    "settings": [{"code": "host", "name": "Host", "type": "STRING", "value": "db.internal"},
                 {"code": "token", "name": "Token", "type": "STRING", "value": "s3cr3t-value"}],
}


class StubBiconnector:
    def __init__(self):
        self.connectors_by_id = {3: copy.deepcopy(CONNECTOR)}
        self.sources_by_id = {8: copy.deepcopy(SOURCE)}
        self.updates: list[tuple[str, int, dict]] = []

    def connectors(self):
        return copy.deepcopy(list(self.connectors_by_id.values()))

    def connector(self, connector_id):
        if connector_id not in self.connectors_by_id:
            raise BitrixError("CONNECTOR_NOT_FOUND", "Connector was not found.", status=200)
        return copy.deepcopy(self.connectors_by_id[connector_id])

    def update_connector(self, connector_id, fields):
        self.updates.append(("connector", connector_id, copy.deepcopy(fields)))
        self.connectors_by_id[connector_id].update(fields)
        return True

    def sources(self):
        return copy.deepcopy(list(self.sources_by_id.values()))

    def source(self, source_id):
        if source_id not in self.sources_by_id:
            raise BitrixError("SOURCE_NOT_FOUND", "Source was not found.", status=200)
        return copy.deepcopy(self.sources_by_id[source_id])

    def update_source(self, source_id, fields):
        self.updates.append(("source", source_id, copy.deepcopy(fields)))
        source = self.sources_by_id[source_id]
        source.update({key: value for key, value in fields.items() if key != "settings"})
        stored = {row["code"]: row for row in source["settings"]}
        for code, value in (fields.get("settings") or {}).items():
            stored.setdefault(code, {"code": code, "name": code, "type": "STRING"})["value"] = value
        source["settings"] = list(stored.values())
        return True


class StubBitrix:
    """Bitrix24's biconnector in memory; everything else (the app's database, settings, other REST
    calls) is the test app's own, for an installed fake portal (`member_id`)."""

    def __init__(self, bitrix, member_id: str):
        self.real = bitrix
        self.member_id = member_id
        self.stub = StubBiconnector()
        self.asked_for: list[str] = []

    def __getattr__(self, name):
        return getattr(self.real, name)

    def biconnector(self, member_id):
        self.asked_for.append(member_id)
        return self.stub


@pytest.fixture
def bitrix_stub(bitrix, installed_portal):
    return StubBitrix(bitrix, installed_portal.member_id)


def admin_tab(bitrix_stub, lang="en") -> TabService:
    return TabService(bitrix_stub, TabSession(bitrix_stub.member_id, 1, is_admin=True, can_edit=True, lang=lang))


# --- reading ---------------------------------------------------------------------------------

def test_every_call_uses_the_sessions_portal(bitrix_stub):
    tab = admin_tab(bitrix_stub)
    tab.connectors()
    tab.sources()
    tab.source("8")
    assert set(bitrix_stub.asked_for) == {bitrix_stub.member_id}


def test_sources_carry_only_values_that_are_not_secret(bitrix_stub):
    listed = admin_tab(bitrix_stub).sources()
    one = admin_tab(bitrix_stub).source("8")
    for item in (listed[0], one):
        assert "s3cr3t-value" not in repr(item)
        rows = {row["code"]: row for row in item["settings"]}
        assert rows["token"] == {"code": "token", "name": "Token", "type": "STRING", "secret": True, "isSet": True}
        assert rows["host"]["value"] == "db.internal" and rows["host"]["secret"] is False


def test_an_administrators_choice_decides_and_new_codes_follow_the_default_rule(bitrix_stub):
    tab = admin_tab(bitrix_stub)
    outcome = tab.update_connector("3", {"secretSettings": ["host"]})
    assert outcome["changed"] == ["secretSettings"] and bitrix_stub.stub.updates == []  # not sent to Bitrix24
    assert outcome["item"]["secretSettings"] == ["host"]
    rows = {row["code"]: row for row in tab.source("8")["settings"]}
    assert "value" not in rows["host"] and rows["token"]["value"] == "s3cr3t-value"  # the administrator said so
    settings = CONNECTOR["settings"] + [{"name": "Key", "code": "apiKey", "type": "STRING"}]
    assert tab.update_connector("3", {"settings": settings})["item"]["secretSettings"] == ["host", "apiKey"]
    assert tab.update_connector("3", {"secretSettings": ["host"]})["changed"] == ["secretSettings"]
    assert tab.connector("3")["secretSettings"] == ["host"]


def test_secret_setting_choices_are_per_portal(bitrix_stub, bitrix, fake):
    admin_tab(bitrix_stub).update_connector("3", {"secretSettings": []})
    other = fake.add_portal(domain="beta.bitrix24.test")
    assert fake.install(other).status_code == 200
    elsewhere = StubBitrix(bitrix, other.member_id)
    assert TabService(elsewhere, TabSession(other.member_id, 1, is_admin=True, can_edit=True)).connector("3")[
        "secretSettings"] == ["token"]
    assert admin_tab(bitrix_stub).connector("3")["secretSettings"] == []


@pytest.mark.parametrize("codes", ["token", [1], [""], ["x" * 513], None])
def test_secret_setting_lists_are_validated(bitrix_stub, codes):
    with pytest.raises(InvalidFields) as caught:
        admin_tab(bitrix_stub).update_connector("3", {"secretSettings": codes})
    assert caught.value.code == "VALIDATION_INVALID_FIELD_TYPE"


def test_url_check_failures_are_classified_from_what_bitrix24_says():
    cannot = BitrixError("SOURCE_UPDATE_CONNECTION_ERROR", "Cannot update connection.")
    assert url_check_outcome(cannot) == ("refused", None)  # all the module says (reference 6.4)
    assert url_check_outcome(BitrixError("NETWORK_TIMEOUT", "")) == ("no_answer", None)
    # Defensive: newer portal code may say more.
    assert url_check_outcome(BitrixError("SOURCE_CREATE_CONNECTION_ERROR", "Endpoint answered 403")) == (
        "error_status", 403)
    assert url_check_outcome(BitrixError("SOURCE_UPDATE_CONNECTION_ERROR", "Empty response")) == ("empty_body", 200)
    assert url_check_outcome(BitrixError("SOURCE_UPDATE_CONNECTION_ERROR", "Connection timed out")) == (
        "no_answer", None)
    assert url_check_outcome(BitrixError("SOURCE_NOT_FOUND", "Source was not found.")) is None
    for outcome in ("ok", "no_answer", "error_status", "empty_body", "refused"):
        for lang in ("en", "ru"):
            assert check_result(outcome, 403, lang)["message"]
    assert "(403)" in check_result("error_status", 403, "en")["message"]
    assert "отклонил" in check_result("error_status", 401, "ru")["message"]


def test_a_source_shows_one_row_per_declared_setting_and_whether_it_is_set(bitrix_stub):
    settings = admin_tab(bitrix_stub).source("8")["settings"]
    assert [(row["code"], row["type"], row["isSet"]) for row in settings] == [
        ("host", "STRING", True), ("port", "INT", False), ("token", "STRING", True)]


def test_present_source_keeps_only_known_public_fields():
    item = present_source({**SOURCE, "futureSecret": "x", "connection": {"password": "p"}})
    assert "futureSecret" not in item and "connection" not in item


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "1.5", "", " 3", "１２", "99999999999", None, True])
def test_ids_must_be_positive_integers(raw):
    with pytest.raises(Rejected) as caught:
        parse_id(raw)
    assert (caught.value.status, caught.value.code) == (400, "VALIDATION_INVALID_ID_FORMAT")


# --- connectors ------------------------------------------------------------------------------

def test_only_changed_connector_fields_are_sent(bitrix_stub):
    result = admin_tab(bitrix_stub).update_connector("3", {"title": "Warehouse 2", "sort": "100",
                                                           "urlCheck": CONNECTOR["urlCheck"]})
    assert bitrix_stub.stub.updates == [("connector", 3, {"title": "Warehouse 2"})]
    assert result["changed"] == ["title"] and result["item"]["title"] == "Warehouse 2"


def test_unchanged_connector_makes_no_call(bitrix_stub):
    result = admin_tab(bitrix_stub).update_connector("3", {"title": "Warehouse", "settings": CONNECTOR["settings"]})
    assert bitrix_stub.stub.updates == [] and result["changed"] == []


def test_changed_settings_are_sent_as_the_complete_table(bitrix_stub):
    reordered = [CONNECTOR["settings"][1], CONNECTOR["settings"][0]]
    admin_tab(bitrix_stub).update_connector("3", {"settings": reordered})
    assert bitrix_stub.stub.updates == [("connector", 3, {"settings": reordered})]


def test_settings_keys_are_normalized_before_comparing():
    rows = [{"Name": row["name"], "CODE": row["code"], "type": row["type"]} for row in CONNECTOR["settings"]]
    assert changed_connector_fields(CONNECTOR, {"settings": rows}) == {}


def test_invalid_connector_fields_make_no_call(bitrix_stub):
    with pytest.raises(InvalidFields) as caught:
        admin_tab(bitrix_stub).update_connector("3", {"title": "", "urlCheck": "ftp://x"})
    assert [e.field for e in caught.value.errors] == ["title", "urlCheck"]
    assert caught.value.status == 400 and caught.value.code == "BX_EMPTY_REQUIRED"
    assert bitrix_stub.stub.updates == []


def test_russian_field_messages(bitrix_stub):
    with pytest.raises(InvalidFields) as caught:
        admin_tab(bitrix_stub, lang="ru").update_connector("3", {"urlCheck": "ftp://x"})
    assert "http://" in caught.value.fields("ru")[0]["message"]
    assert caught.value.description.startswith("Перед сохранением")


def test_missing_connector_is_a_bitrix_error(bitrix_stub):
    with pytest.raises(BitrixError) as caught:
        admin_tab(bitrix_stub).update_connector("99", {"title": "x"})
    assert caught.value.code == "CONNECTOR_NOT_FOUND"


# --- sources ---------------------------------------------------------------------------------

def test_source_title_is_always_sent_with_a_change(bitrix_stub):
    admin_tab(bitrix_stub).update_source("8", {"description": "second"})
    assert bitrix_stub.stub.updates == [("source", 8, {"title": "Main", "description": "second"})]


def test_typed_settings_are_sent_even_if_equal_to_the_stored_secret(bitrix_stub):
    # Comparing with the stored value would tell a user whether their guess of a secret was right.
    result = admin_tab(bitrix_stub).update_source("8", {"settings": {"token": "s3cr3t-value", "port": " 5433 "}})
    assert bitrix_stub.stub.updates == [("source", 8, {"title": "Main", "settings": {"token": "s3cr3t-value", "port": "5433"}})]
    assert result["changed"] == ["settings", "title"]
    assert "s3cr3t-value" not in repr(result)


def test_empty_setting_values_mean_not_typed(bitrix_stub):
    result = admin_tab(bitrix_stub).update_source("8", {"title": "Main", "settings": {"token": "  "}})
    assert bitrix_stub.stub.updates == [] and result["changed"] == []


def test_an_unchanged_source_is_not_sent(bitrix_stub):
    # source.update calls the connector's urlCheck every time: no change, no call.
    admin_tab(bitrix_stub).update_source("8", {"title": "Main", "description": "first"})
    assert bitrix_stub.stub.updates == []


@pytest.mark.parametrize(("fields", "field", "code"), [
    ({"active": False}, "active", "VALIDATION_READ_ONLY_FIELD"),
    ({"connectorId": 4}, "connectorId", "VALIDATION_IMMUTABLE_FIELD"),
    ({"title": ""}, "title", "BX_EMPTY_REQUIRED"),
    ({"settings": {"port": "five"}}, "settings.port", "INVALID_SETTING_VALUE"),
    ({"settings": {"password": "x"}}, "settings.password", "UNKNOWN_SETTING_CODE"),
    ({"code": "rest_9"}, "code", "VALIDATION_READ_ONLY_FIELD"),
])
def test_invalid_source_fields(bitrix_stub, fields, field, code):
    with pytest.raises(InvalidFields) as caught:
        admin_tab(bitrix_stub).update_source("8", fields)
    assert (caught.value.errors[0].field, caught.value.errors[0].code) == (field, code)
    assert bitrix_stub.stub.updates == []


# --- permissions -----------------------------------------------------------------------------

def test_reader_cannot_change_anything(bitrix, fake, installed_portal):
    reader = TabService(bitrix, TabSession(installed_portal.member_id, 2, is_admin=False, can_edit=True))
    # can_edit in the token is not enough: the database decides on every change.
    for change in (lambda: reader.update_connector("1", {"title": "x"}), lambda: reader.update_source("1", {"title": "x"}),
                   lambda: reader.set_editors([2]), lambda: reader.editors(), lambda: reader.reseed()):
        with pytest.raises(Rejected) as caught:
            change()
        assert caught.value.status == 403


def test_editors_are_stored_per_portal_and_checked_on_every_change(bitrix, fake, installed_portal):
    admin = TabService(bitrix, TabSession(installed_portal.member_id, 1, is_admin=True, can_edit=True))
    while max(installed_portal.users) < 7:  # editors must be users of the portal
        installed_portal.add_user()
    user = TabService(bitrix, TabSession(installed_portal.member_id, 5, is_admin=False, can_edit=False))
    assert not user.may_edit()
    assert admin.set_editors([5, "7", 5])["userIds"] == [5, 7]
    assert user.may_edit()
    admin.set_editors([])
    assert not user.may_edit()


@pytest.mark.parametrize("value", ["5", [0], [-1], ["x"], [True], [1.5], list(range(1, 600)), None])
def test_editor_lists_are_validated(bitrix, fake, installed_portal, value):
    admin = TabService(bitrix, TabSession(installed_portal.member_id, 1, is_admin=True, can_edit=True))
    with pytest.raises(Rejected) as caught:
        admin.set_editors(value)
    assert (caught.value.status, caught.value.code) == (400, "INVALID_EDITORS")


# --- endpoint URLs (Bitrix24 posts every stored source setting to urlCheck) -------------------

def no_lookups(host, *args, **kwargs):
    raise AssertionError(f"{host} was looked up, but no changed URL needed it")


def editor_tab(bitrix_stub, monkeypatch) -> TabService:
    tab = TabService(bitrix_stub, TabSession(bitrix_stub.member_id, 5, is_admin=False, can_edit=True))
    monkeypatch.setattr(tab, "may_edit", lambda: True)  # an allowed editor, as the database says
    return tab


def test_endpoint_urls_are_for_administrators_only(bitrix_stub, monkeypatch):
    with pytest.raises(InvalidFields) as caught:
        editor_tab(bitrix_stub, monkeypatch).update_connector("3", {"urlCheck": "https://x.example/check",
                                                                    "urlData": CONNECTOR["urlData"]})
    assert (caught.value.status, caught.value.code) == (403, "ENDPOINTS_ADMIN_ONLY")
    assert [error.field for error in caught.value.errors] == ["urlCheck"]  # urlData did not change
    assert bitrix_stub.stub.updates == []


def test_an_editor_changes_everything_else(bitrix_stub, monkeypatch):
    editor_tab(bitrix_stub, monkeypatch).update_connector("3", {"description": "d", "urlCheck": CONNECTOR["urlCheck"]})
    assert bitrix_stub.stub.updates == [("connector", 3, {"description": "d"})]


def test_unchanged_urls_are_never_resolved(bitrix_stub):
    bitrix_stub.endpoint_policy = EndpointPolicy(resolver=no_lookups)
    admin_tab(bitrix_stub).update_connector("3", {key: CONNECTOR[key] for key in URL_FIELDS} | {"sort": 5})
    assert bitrix_stub.stub.updates == [("connector", 3, {"sort": 5})]


def test_a_changed_url_must_point_to_a_public_host(bitrix_stub):
    bitrix_stub.endpoint_policy = EndpointPolicy(resolver=no_lookups)
    with pytest.raises(InvalidFields) as caught:
        admin_tab(bitrix_stub, lang="ru").update_connector("3", {"urlTableList": "http://192.168.0.10/tables"})
    assert (caught.value.status, caught.value.code) == (400, "ADDRESS_NOT_ALLOWED")
    assert "192.168.0.10 is a private address" in caught.value.errors[0].message
    assert "публичный хост" in caught.value.fields("ru")[0]["message"]
    assert bitrix_stub.stub.updates == []
