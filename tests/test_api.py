"""The tab's JSON API against the fake Bitrix24: auth, permissions, validation, error mapping,
cross-portal isolation and secrets."""
from __future__ import annotations

import json
import socket
import time

import pytest

from bitrix_app.api import status_for
from bitrix_app.models import Portal, PortalStatus, ReseedGrantRecord
from bitrix_app.services.biconnector import Biconnector
from bitrix_app.services.errors import BitrixError, OAuthError, PortalUnavailable
from bitrix_app.services.rest import BitrixClient
from bitrix_app.services.session_tokens import RENEWAL_GRACE, SessionTokens, TabSession
from bitrix_app.services.validation import EndpointPolicy
from tests.conftest import TabApi, bx24_auth, not_gateway

SECRETS = ("demo-token-1", "demo-token-2")  # the demo connector's `token` values; host and port are not secret


@pytest.fixture
def admin(open_tab, demo_portal):
    return open_tab(demo_portal)


@pytest.fixture
def reader(open_tab, demo_portal):
    return open_tab(demo_portal, demo_portal.add_user("Olga Reader"))


@pytest.fixture
def sent(monkeypatch):
    """Every connector.update / source.update the app sends: (kind, id, fields)."""
    calls = []
    for kind, name in (("connector", "update_connector"), ("source", "update_source")):
        original = getattr(Biconnector, name)

        def spy(self, object_id, fields, _original=original, _kind=kind):
            calls.append((_kind, object_id, json.loads(json.dumps(fields))))
            return _original(self, object_id, fields)

        monkeypatch.setattr(Biconnector, name, spy)
    return calls


@pytest.fixture
def no_backoff(monkeypatch):
    """The REST client retries QUERY_LIMIT_EXCEEDED with 1-2-4 s pauses; tests do not wait."""
    original = BitrixClient.__init__

    def fast(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.sleep = lambda seconds: None

    monkeypatch.setattr(BitrixClient, "__init__", fast)


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]


def connector_id(portal) -> int:
    return portal.demo["connector_id"]


def source_id(portal, index: int = 0) -> int:
    return portal.demo["source_ids"][index]


# --- session tokens --------------------------------------------------------------------------

def test_requests_without_a_session_token_are_refused(client, demo_portal):
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}, {"Authorization": "Bearer"}):
        response = client.get("/api/connectors", headers=headers)
        assert error_of(response) == (401, "SESSION_REQUIRED")


def tokens_like_the_apps(app, **overrides) -> SessionTokens:
    settings = {"secret_keys": [app.config["SECRET_KEY"]], "ttl": 600, "audience": app.config["BITRIX_CLIENT_ID"],
                **overrides}
    return SessionTokens(**settings)


def current_generation(bitrix, member_id: str) -> int:
    return bitrix.portal(member_id).install_generation


def test_garbage_and_foreign_tokens_are_refused(client, app, bitrix, demo_portal):
    admin = TabSession(demo_portal.member_id, 1, True, True, generation=current_generation(bitrix, demo_portal.member_id))
    another_key = tokens_like_the_apps(app, secret_keys=["another-secret-of-at-least-32-characters"]).issue(admin)
    another_app = tokens_like_the_apps(app, audience="another.app").issue(admin)
    for token in ("garbage", another_key, another_app):
        response = client.get("/api/connectors", headers={"Authorization": f"Bearer {token}"})
        assert error_of(response) == (401, "SESSION_INVALID")


def test_expired_session_tokens_are_refused(client, app, bitrix, demo_portal):
    issued_long_ago = tokens_like_the_apps(app, clock=lambda: 1_000_000_000).issue(
        TabSession(demo_portal.member_id, 1, True, True, generation=current_generation(bitrix, demo_portal.member_id)))
    response = client.get("/api/connectors", headers={"Authorization": f"Bearer {issued_long_ago}"})
    assert error_of(response) == (401, "SESSION_EXPIRED")
    assert "Reload the page" in response.get_json()["error_description"]


def test_the_secret_key_can_be_rotated(app, open_tab, demo_portal, monkeypatch):
    old_key, new_key = app.config["SECRET_KEY"], "a-new-secret-key-of-at-least-32-characters"
    before = open_tab(demo_portal)
    monkeypatch.setitem(app.config, "SECRET_KEY", f"{new_key},{old_key}")
    after = open_tab(demo_portal)
    assert before.get("/connectors").status_code == 200  # every key verifies
    assert tokens_like_the_apps(app, secret_keys=[new_key]).read(after.session_token)  # the first one signs
    monkeypatch.setitem(app.config, "SECRET_KEY", new_key)
    assert after.get("/connectors").status_code == 200
    assert error_of(before.get("/connectors")) == (401, "SESSION_INVALID")


# --- session lifetime: bound to the installation, renewed by the page, rights re-checked -------

def editors_of(bitrix, member_id: str) -> list[int]:
    return bitrix.portal(member_id).editor_user_ids


def reinstall(fake, portal) -> None:
    assert fake.install(portal).status_code == 200
    fake.finish_install(portal)


def test_a_session_from_before_an_uninstall_changes_nothing(fake, admin, demo_portal, bitrix):
    fake.uninstall(demo_portal)
    assert error_of(admin.put("/editors", json={"userIds": [5]})) == (409, "PORTAL_UNINSTALLED")
    assert error_of(admin.get("/editors")) == (409, "PORTAL_UNINSTALLED")
    assert editors_of(bitrix, demo_portal.member_id) == []


def test_a_session_from_before_a_reinstall_is_revoked(fake, open_tab, admin, demo_portal):
    fake.uninstall(demo_portal)
    reinstall(fake, demo_portal)
    response = admin.get("/connectors")
    assert error_of(response) == (401, "SESSION_REVOKED")
    assert "Reload the page" in response.get_json()["error_description"]
    assert error_of(admin.renew()) == (401, "SESSION_REVOKED")
    assert open_tab(demo_portal).get("/connectors").status_code == 200


def test_installing_again_over_an_installation_revokes_its_sessions_too(fake, admin, demo_portal):
    reinstall(fake, demo_portal)
    assert error_of(admin.get("/connectors")) == (401, "SESSION_REVOKED")


def test_an_administrator_demoted_in_bitrix24_loses_the_rights_at_the_next_change(admin, demo_portal, bitrix, sent):
    demo_portal.admin.is_admin = False
    assert error_of(admin.put("/editors", json={"userIds": [5]})) == (403, "ADMIN_ONLY")
    assert error_of(admin.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {"title": "X"}})) == (
        403, "READ_ONLY")
    assert editors_of(bitrix, demo_portal.member_id) == [] and sent == []


def test_a_demoted_administrator_who_is_an_allowed_editor_still_edits(admin, demo_portal, bitrix, sent):
    assert admin.put("/editors", json={"userIds": [demo_portal.admin.id]}).status_code == 200
    demo_portal.admin.is_admin = False
    assert admin.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {"title": "X"}}).status_code == 200
    assert error_of(admin.put("/editors", json={"userIds": []})) == (403, "ADMIN_ONLY")


def test_an_administrators_change_needs_a_fresh_bitrix24_authorization(client, admin, demo_portal, bitrix):
    without_bx24 = TabApi(client, admin.session_token)
    response = without_bx24.put("/editors", json={"userIds": [5]})
    assert error_of(response) == (401, "BITRIX_AUTH_REQUIRED")
    assert "open it again" in response.get_json()["error_description"]
    assert without_bx24.get("/editors").status_code == 200  # reads trust the minutes-old token
    assert editors_of(bitrix, demo_portal.member_id) == []


def test_the_fresh_authorization_must_be_the_sessions_user(fake, client, admin, demo_portal, bitrix):
    other_admin = demo_portal.add_user("Anna Admin", admin=True)
    borrowed = TabApi(client, admin.session_token, bx24_auth(fake, demo_portal, other_admin))
    assert error_of(borrowed.put("/editors", json={"userIds": [5]})) == (401, "INVALID_AUTH")
    forged = TabApi(client, admin.session_token, lambda: "not-a-token")
    assert error_of(forged.put("/editors", json={"userIds": [5]})) == (401, "INVALID_AUTH")
    assert editors_of(bitrix, demo_portal.member_id) == []


def test_a_readers_changes_are_refused_without_asking_bitrix24(fake, reader, demo_portal):
    fake.clear_log()
    assert error_of(reader.put("/editors", json={"userIds": [5]})) == (403, "ADMIN_ONLY")
    assert fake.count_requests(demo_portal, "user.admin") == 0


def test_the_page_renews_its_session(app, admin, demo_portal, read_session):
    first = admin.session_token
    response = admin.renew()
    assert response.status_code == 200
    result = response.get_json()["result"]
    assert (result["expiresIn"], result["isAdmin"], result["canEdit"]) == (app.config["SESSION_TOKEN_TTL"], True, True)
    assert read_session(result["token"]) == read_session(first)
    assert admin.get("/connectors").status_code == 200


def test_renewal_asks_bitrix24_for_the_users_rights_again(admin, reader, demo_portal, read_session):
    demo_portal.admin.is_admin = False
    result = admin.renew().get_json()["result"]
    assert (result["isAdmin"], result["canEdit"]) == (False, False)
    assert read_session(admin.session_token).is_admin is False
    assert error_of(admin.get("/editors")) == (403, "ADMIN_ONLY")
    promoted = demo_portal.users[reader_user_id(reader)]
    promoted.is_admin = True
    assert reader.renew().get_json()["result"]["isAdmin"] is True


def test_renewal_needs_a_fresh_authorization(client, admin):
    assert error_of(TabApi(client, admin.session_token).renew()) == (401, "BITRIX_AUTH_REQUIRED")


def test_a_session_that_just_expired_is_renewed_but_not_one_long_gone(fake, client, app, bitrix, demo_portal):
    session = TabSession(demo_portal.member_id, demo_portal.admin.id, True, True,
                         generation=current_generation(bitrix, demo_portal.member_id))
    now = time.time()
    for issued, status in ((now - 600 - 60, 200), (now - 600 - RENEWAL_GRACE - 60, 401)):
        token = tokens_like_the_apps(app, clock=lambda issued=issued: issued).issue(session)
        tab = TabApi(client, token, bx24_auth(fake, demo_portal))
        assert error_of(tab.get("/connectors")) == (401, "SESSION_EXPIRED")
        assert tab.renew().status_code == status
        assert tab.get("/connectors").status_code == status


def test_cookies_play_no_part(admin, client):
    response = admin.get("/connectors")
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    assert client.get("/api/connectors").status_code == 401  # the test client keeps no session either


def test_api_responses_forbid_framing_and_caching(admin, client):
    for response in (admin.get("/connectors"), client.get("/api/connectors"), admin.get("/no-such-endpoint")):
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"


def test_session_endpoint(admin, reader):
    assert admin.get("/session").get_json()["result"]["canEdit"] is True
    assert reader.get("/session").get_json()["result"] == {
        "userId": reader_user_id(reader), "isAdmin": False, "canEdit": False, "portalStatus": "active"}


def reader_user_id(tab) -> int:
    return tab.get("/session").get_json()["result"]["userId"]


# --- reading ---------------------------------------------------------------------------------

def test_lists_connectors_and_sources(admin, demo_portal):
    connectors = admin.get("/connectors").get_json()["result"]
    sources = admin.get("/sources").get_json()["result"]
    assert [c["title"] for c in not_gateway(connectors)] == ["Demo warehouse"]
    assert [s["title"] for s in sources] == ["Main warehouse", "Backup warehouse"]
    assert {s["connectorId"] for s in sources} == {connector_id(demo_portal)}


def test_lists_every_page(fake, open_tab, installed_portal):
    registered = len(installed_portal.connectors)  # the gateway's own, added at install
    for number in range(53):
        fake.seed_connector(installed_portal, {"title": f"C{number}", "logo": "https://l.test/x.svg",
                                               "urlCheck": "https://c.test/a", "urlData": "https://c.test/b",
                                               "urlTableList": "https://c.test/c", "urlTableDescription": "https://c.test/d"})
    assert len(open_tab(installed_portal).get("/connectors").get_json()["result"]) == 53 + registered


def test_secrets_are_never_returned(admin, reader, demo_portal):
    responses = [tab.get(path) for tab in (admin, reader)
                 for path in ("/sources", f"/sources/{source_id(demo_portal)}", f"/sources/{source_id(demo_portal, 1)}")]
    for response in responses:
        assert response.status_code == 200
        for secret in SECRETS:
            assert secret not in response.get_data(as_text=True)
    settings = responses[1].get_json()["result"]["settings"]
    assert settings == [{"code": "host", "name": "Host", "type": "STRING", "secret": False, "isSet": True,
                         "value": "wh1.demo.test"},
                        {"code": "port", "name": "Port", "type": "INT", "secret": False, "isSet": True, "value": "5432"},
                        {"code": "token", "name": "API token", "type": "STRING", "secret": True, "isSet": True}]
    connector = admin.get(f"/connectors/{connector_id(demo_portal)}").get_json()["result"]
    assert connector["secretSettings"] == ["token"]  # the default rule


def test_administrators_choose_which_settings_are_secret(admin, reader, editor, demo_portal):
    path = f"/connectors/{connector_id(demo_portal)}"
    assert error_of(editor.post(path, json={"fields": {"secretSettings": []}})) == (403, "ADMIN_ONLY")
    response = admin.post(path, json={"fields": {"secretSettings": ["host", "token"]}})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["result"]["changed"] == ["secretSettings"]
    assert response.get_json()["result"]["item"]["secretSettings"] == ["host", "token"]
    for tab in (admin, reader):
        body = tab.get(f"/sources/{source_id(demo_portal)}").get_data(as_text=True)
        assert "wh1.demo.test" not in body and "demo-token-1" not in body and '"value":"5432"' in body
        assert "wh2.demo.test" not in tab.get("/sources").get_data(as_text=True)
    # The choice stays the app's own: Bitrix24's connector is untouched.
    assert "secretSettings" not in json.dumps(demo_portal.connectors[connector_id(demo_portal)])
    assert error_of(admin.post(path, json={"fields": {"secretSettings": ["nope"]}})) == (400, "UNKNOWN_SETTING_CODE")
    assert error_of(admin.post(path, json={"fields": {"secretSettings": "token"}})) == (
        400, "VALIDATION_INVALID_FIELD_TYPE")
    # A setting added later follows the default rule; the administrator's choices are kept.
    settings = demo_portal.connectors[connector_id(demo_portal)]["settings"] + [
        {"name": "Password", "code": "db_password", "type": "STRING"}]
    updated = admin.post(path, json={"fields": {"settings": settings}}).get_json()["result"]["item"]
    assert updated["secretSettings"] == ["host", "token", "db_password"]


def test_readers_can_read(reader, demo_portal):
    assert reader.get(f"/connectors/{connector_id(demo_portal)}").get_json()["result"]["title"] == "Demo warehouse"


@pytest.mark.parametrize("path", ["/connectors/abc", "/connectors/0", "/connectors/-1", "/sources/1.5",
                                  "/sources/99999999999999999999"])
def test_non_numeric_ids_are_400(admin, path):
    assert error_of(admin.get(path)) == (400, "VALIDATION_INVALID_ID_FORMAT")
    assert error_of(admin.post(path, json={"fields": {"title": "x"}})) == (400, "VALIDATION_INVALID_ID_FORMAT")


def test_missing_objects_are_404(admin):
    response = admin.get("/connectors/999")
    assert error_of(response) == (404, "CONNECTOR_NOT_FOUND")
    assert "no such connector" in response.get_json()["error_description"]
    assert error_of(admin.get("/sources/999")) == (404, "SOURCE_NOT_FOUND")
    assert error_of(admin.post("/sources/999", json={"fields": {"title": "x"}})) == (404, "SOURCE_NOT_FOUND")


# --- changing connectors ---------------------------------------------------------------------

def test_admin_changes_a_connector_title_and_its_settings_table(admin, demo_portal, sent):
    new_settings = [{"name": "Port", "code": "port", "type": "INT"},
                    {"name": "Host name", "code": "host", "type": "STRING"},
                    {"name": "Database", "code": "db", "type": "STRING"}]
    response = admin.post(f"/connectors/{connector_id(demo_portal)}",
                          json={"fields": {"title": "Warehouse v2", "settings": new_settings}})
    assert response.status_code == 200, response.get_json()
    result = response.get_json()["result"]
    assert result["changed"] == ["settings", "title"] and result["item"]["title"] == "Warehouse v2"
    stored = demo_portal.connectors[connector_id(demo_portal)]
    assert stored["title"] == "Warehouse v2" and stored["settings"] == new_settings
    assert sent == [("connector", connector_id(demo_portal), {"title": "Warehouse v2", "settings": new_settings})]


def test_only_changed_fields_are_sent(admin, demo_portal, sent):
    current = admin.get(f"/connectors/{connector_id(demo_portal)}").get_json()["result"]
    fields = {key: current[key] for key in ("title", "logo", "urlCheck", "settings")}
    fields["description"] = "Now described"
    response = admin.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": fields})
    assert response.get_json()["result"]["changed"] == ["description"]
    assert sent == [("connector", connector_id(demo_portal), {"description": "Now described"})]


def test_validation_errors_are_shown_per_field_and_nothing_is_sent(admin, demo_portal, sent):
    response = admin.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {
        "title": "x" * 513, "urlData": "ftp://nope", "sort": "ten",
        "settings": [{"name": "Host", "code": "host", "type": "string"}]}})
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "VALIDATION_INVALID_FIELD_TYPE"
    assert {(f["field"], f["code"]) for f in body["fields"]} == {
        ("sort", "VALIDATION_INVALID_FIELD_TYPE"), ("title", "BX_INVALID_VALUE"), ("urlData", "INVALID_URL"),
        ("settings[0].type", "VALIDATION_SETTINGS_INVALID_TYPE")}
    assert sent == []


def test_unknown_and_read_only_fields(admin, demo_portal):
    response = admin.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {"appId": "x", "id": 5}})
    assert error_of(response) == (400, "VALIDATION_UNKNOWN_PARAMETERS")
    assert [f["field"] for f in response.get_json()["fields"]] == ["appId", "id"]


def test_errors_bitrix24_finds_itself_are_mapped_to_400(admin, demo_portal, fake):
    fake.config.source_code = False  # an older portal that does not know sourceCode
    response = admin.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {"sourceCode": "mysql"}})
    assert error_of(response) == (400, "VALIDATION_UNKNOWN_PARAMETERS")
    assert response.get_json()["error_description"].startswith("Bitrix24 rejected the data")


def test_logo_upload_as_data_uri(admin, demo_portal):
    logo = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    response = admin.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {"logo": logo}})
    assert response.status_code == 200
    assert demo_portal.connectors[connector_id(demo_portal)]["logo"] == logo


# --- changing sources ------------------------------------------------------------------------

def test_admin_changes_a_source_setting(admin, demo_portal, fake, sent):
    fake.clear_log()
    response = admin.post(f"/sources/{source_id(demo_portal)}", json={"fields": {"settings": {"token": "new-secret-9"}}})
    assert response.status_code == 200, response.get_json()
    assert "new-secret-9" not in response.get_data(as_text=True)
    stored = {s["code"]: s["value"] for s in demo_portal.sources[source_id(demo_portal)]["settings"]}
    assert stored == {"host": "wh1.demo.test", "port": "5432", "token": "new-secret-9"}
    assert sent == [("source", source_id(demo_portal), {"title": "Main warehouse", "settings": {"token": "new-secret-9"}})]
    assert len(fake.outbound_calls) == 1  # Bitrix24 checked the connector's urlCheck


def test_source_title_and_description(admin, demo_portal, sent):
    response = admin.post(f"/sources/{source_id(demo_portal)}", json={"fields": {"title": "Main WH", "description": "d"}})
    assert response.get_json()["result"]["item"]["title"] == "Main WH"
    assert demo_portal.sources[source_id(demo_portal)]["description"] == "d"
    assert sent == [("source", source_id(demo_portal), {"title": "Main WH", "description": "d"})]


def test_unchanged_source_is_not_sent(admin, demo_portal, fake, sent):
    fake.clear_log()
    response = admin.post(f"/sources/{source_id(demo_portal)}", json={"fields": {"title": "Main warehouse"}})
    assert response.get_json()["result"]["changed"] == []
    assert sent == [] and fake.outbound_calls == []


def test_failing_connector_check_is_explained(admin, demo_portal):
    response = admin.post(f"/sources/{source_id(demo_portal)}", json={"fields": {"settings": {"token": "bad"}}})
    assert error_of(response) == (502, "SOURCE_UPDATE_CONNECTION_ERROR")
    description = response.get_json()["error_description"]
    assert "did not answer" in description and "error status" in description and "Test connection" in description
    stored = {s["code"]: s["value"] for s in demo_portal.sources[source_id(demo_portal)]["settings"]}
    assert stored["token"] == "demo-token-1"


@pytest.mark.parametrize(("fields", "code"), [
    ({"active": False}, "VALIDATION_READ_ONLY_FIELD"),
    ({"connectorId": 5}, "VALIDATION_IMMUTABLE_FIELD"),
    ({"settings": {"port": "abc"}}, "INVALID_SETTING_VALUE"),
    ({"settings": {"password": "x"}}, "UNKNOWN_SETTING_CODE"),
    ({"title": ""}, "BX_EMPTY_REQUIRED"),
])
def test_source_validation(admin, demo_portal, sent, fields, code):
    response = admin.post(f"/sources/{source_id(demo_portal)}", json={"fields": fields})
    assert error_of(response) == (400, code) and sent == []


# --- malformed requests ----------------------------------------------------------------------

@pytest.mark.parametrize("body", ["not json", "[1, 2]", '"fields"', "null", "{", "[" * 5000 + "]" * 5000])
def test_bad_json_is_400(admin, demo_portal, body):
    response = admin.post(f"/connectors/{connector_id(demo_portal)}", data=body, content_type="application/json")
    assert error_of(response) == (400, "INVALID_JSON")


def test_non_json_content_type_is_400(admin, demo_portal):
    response = admin.post(f"/connectors/{connector_id(demo_portal)}", data={"fields": "x"})
    assert error_of(response) == (400, "INVALID_JSON")


@pytest.mark.parametrize("fields", [None, "title", [], {}, 5])
def test_fields_of_the_wrong_shape_are_400(admin, demo_portal, fields):
    for path in (f"/connectors/{connector_id(demo_portal)}", f"/sources/{source_id(demo_portal)}"):
        response = admin.post(path, json={"fields": fields})
        assert response.status_code == 400, (path, fields)


def test_huge_bodies_are_413(admin, demo_portal):
    body = json.dumps({"fields": {"description": "x" * (3 * 1024 * 1024)}})
    response = admin.post(f"/connectors/{connector_id(demo_portal)}", data=body, content_type="application/json")
    assert response.status_code == 413 and response.get_json()["error"]


def test_wrong_methods_are_405_json(admin):
    response = admin.put("/connectors")
    assert response.status_code == 405 and response.get_json()["error"]


# --- permissions -----------------------------------------------------------------------------

def test_readers_cannot_change(reader, demo_portal, sent):
    for path in (f"/connectors/{connector_id(demo_portal)}", f"/sources/{source_id(demo_portal)}"):
        response = reader.post(path, json={"fields": {"title": "Hacked"}})
        assert error_of(response) == (403, "READ_ONLY")
    assert error_of(reader.get("/editors")) == (403, "ADMIN_ONLY")
    assert error_of(reader.put("/editors", json={"userIds": [reader_user_id(reader)]})) == (403, "ADMIN_ONLY")
    assert sent == [] and demo_portal.connectors[connector_id(demo_portal)]["title"] == "Demo warehouse"


def test_admin_allows_a_user_to_edit_and_takes_it_back(admin, reader, demo_portal):
    user_id = reader_user_id(reader)
    result = admin.put("/editors", json={"userIds": [user_id]}).get_json()["result"]
    assert result["userIds"] == [user_id] and result["users"][0]["id"] == user_id
    assert admin.get("/editors").get_json()["result"]["userIds"] == [user_id]
    # The same session token now may change things: permission is read on every change.
    assert reader.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {"title": "By editor"}}).status_code == 200
    admin.put("/editors", json={"userIds": []})
    assert error_of(reader.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {"title": "Again"}})) == (
        403, "READ_ONLY")


def test_invalid_editor_lists(admin):
    for body in ({"userIds": "5"}, {"userIds": [0]}, {}, {"userIds": [True]}):
        assert error_of(admin.put("/editors", json=body)) == (400, "INVALID_EDITORS")


# --- cross-portal isolation ------------------------------------------------------------------

def test_a_session_of_one_portal_never_reaches_another(fake, open_tab, demo_portal, sent):
    other = fake.add_portal(domain="beta.bitrix24.test")
    assert fake.install(other).status_code == 200
    fake.finish_install(other)
    other_demo = fake.seed_demo(other)
    extra = fake.seed_connector(other, {"title": "Beta only", "logo": "https://l.test/x.svg",
                                        "urlCheck": "https://c.test/a", "urlData": "https://c.test/b",
                                        "urlTableList": "https://c.test/c", "urlTableDescription": "https://c.test/d"})
    alpha = open_tab(demo_portal)
    # Ids exist on both portals; alpha's session only ever sees and changes alpha's objects.
    assert [c["title"] for c in not_gateway(alpha.get("/connectors").get_json()["result"])] == ["Demo warehouse"]
    assert error_of(alpha.get(f"/connectors/{extra}")) == (404, "CONNECTOR_NOT_FOUND")
    assert error_of(alpha.post(f"/connectors/{extra}", json={"fields": {"title": "x"}})) == (404, "CONNECTOR_NOT_FOUND")
    alpha.post(f"/connectors/{other_demo['connector_id']}", json={"fields": {"title": "Alpha's"}})
    assert other.connectors[other_demo["connector_id"]]["title"] == "Demo warehouse"
    assert demo_portal.connectors[connector_id(demo_portal)]["title"] == "Alpha's"
    assert other.connectors[extra]["title"] == "Beta only"


def test_editor_rights_do_not_cross_portals(fake, open_tab, demo_portal, bitrix):
    other = fake.add_portal(domain="beta.bitrix24.test")
    assert fake.install(other).status_code == 200
    fake.finish_install(other)
    with bitrix.session_factory() as db, db.begin():
        db.query(Portal).filter_by(member_id=other.member_id).one().editor_user_ids = [2]
    reader = open_tab(demo_portal, demo_portal.add_user("Olga Reader"))  # user id 2 on alpha
    assert reader_user_id(reader) == 2
    assert error_of(reader.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {"title": "x"}})) == (
        403, "READ_ONLY")


# --- Bitrix24 failures -----------------------------------------------------------------------

def test_missing_bi_rights_of_the_stored_token_are_403(admin, demo_portal):
    demo_portal.admin.bi_access = False
    response = admin.get("/connectors")
    assert error_of(response) == (403, "ACCESS_DENIED")
    assert "Access to BI Builder" in response.get_json()["error_description"]


def test_rate_limit_is_503_with_retry_after(admin, demo_portal, no_backoff):
    demo_portal.inject_503 = 10
    response = admin.get("/connectors")
    assert error_of(response) == (503, "QUERY_LIMIT_EXCEEDED")
    assert response.headers["Retry-After"] == "5"


def test_operation_time_limit_is_429(admin, demo_portal):
    demo_portal.operation_time_limit_methods.add("biconnector.connector.list")
    response = admin.get("/connectors")
    assert error_of(response) == (429, "OPERATION_TIME_LIMIT")
    assert 0 < int(response.headers["Retry-After"]) <= 600


def test_html_error_pages_are_502(admin, demo_portal):
    demo_portal.html_5xx = 1
    response = admin.get("/connectors")
    assert response.status_code == 502
    assert "error instead of data" in response.get_json()["error_description"]


def test_uninstalled_portal_is_409(admin, fake, demo_portal):
    fake.uninstall(demo_portal)
    assert error_of(admin.get("/connectors")) == (409, "PORTAL_UNINSTALLED")


@pytest.mark.parametrize(("error", "status"), [
    (BitrixError("CONNECTOR_NOT_FOUND", ""), 404),
    (BitrixError("SOURCE_NOT_FOUND", ""), 404),
    (PortalUnavailable("PORTAL_NOT_FOUND", ""), 404),
    (PortalUnavailable("PORTAL_NEEDS_REAUTH", ""), 409),
    (PortalUnavailable("PORTAL_UNINSTALLED", ""), 409),
    (OAuthError("invalid_grant", ""), 409),
    (BitrixError("expired_token", ""), 409),
    (PortalUnavailable("PAYMENT_REQUIRED", ""), 402),
    (BitrixError("ACCESS_DENIED", ""), 403),
    (BitrixError("insufficient_scope", ""), 403),
    (BitrixError("QUERY_LIMIT_EXCEEDED", ""), 503),
    (BitrixError("OVERLOAD_LIMIT", ""), 503),
    (BitrixError("OPERATION_TIME_LIMIT", ""), 429),
    (BitrixError("VALIDATION_UNKNOWN_PARAMETERS", ""), 400),
    (BitrixError("BX_INVALID_VALUE", ""), 400),
    (BitrixError(0, "All the fields are required."), 400),
    (BitrixError(0, "Something else"), 502),
    (BitrixError("SOURCE_UPDATE_CONNECTION_ERROR", ""), 502),
    (BitrixError("NETWORK_ERROR", ""), 502),
    (BitrixError("NETWORK_TIMEOUT", ""), 502),
    (BitrixError("HTTP_500", ""), 502),
    (BitrixError("BX_ERROR", ""), 502),
    (BitrixError("ANYTHING_NEW", ""), 502),
])
def test_every_bitrix24_error_has_a_status(error, status):
    assert status_for(error) == status


# --- re-authorization ------------------------------------------------------------------------

def set_status(bitrix, member_id: str, status: str) -> None:
    with bitrix.session_factory() as db, db.begin():
        db.query(Portal).filter_by(member_id=member_id).one().status = status


def test_needs_reauth_is_409_and_one_click_reseeds(fake, open_tab, demo_portal, bitrix):
    set_status(bitrix, demo_portal.member_id, PortalStatus.NEEDS_REAUTH)
    admin = open_tab(demo_portal)
    response = admin.get("/connectors")
    assert error_of(response) == (409, "PORTAL_NEEDS_REAUTH")
    assert "Renew authorization" in response.get_json()["error_description"]
    response = admin.post("/reseed")
    assert response.status_code == 200 and response.get_json()["result"] == {"status": "active"}
    assert admin.get("/connectors").status_code == 200
    assert bitrix.portal(demo_portal.member_id).status == PortalStatus.ACTIVE


def test_payment_required_portal_is_reseeded_by_an_admin_after_paying(fake, open_tab, demo_portal, bitrix):
    set_status(bitrix, demo_portal.member_id, PortalStatus.PAYMENT_REQUIRED)
    admin = open_tab(demo_portal)
    assert error_of(admin.get("/connectors"))[0] == 402
    assert admin.post("/reseed").get_json()["result"] == {"status": "active"}
    assert admin.get("/connectors").status_code == 200


def test_reseed_is_for_admins_only(fake, open_tab, demo_portal, bitrix):
    set_status(bitrix, demo_portal.member_id, PortalStatus.NEEDS_REAUTH)
    reader = open_tab(demo_portal, demo_portal.add_user("Olga Reader"))
    assert error_of(reader.post("/reseed")) == (403, "ADMIN_ONLY")
    assert bitrix.portal(demo_portal.member_id).status == PortalStatus.NEEDS_REAUTH


def test_reseed_without_a_grant_asks_to_reopen(admin, demo_portal, bitrix):
    set_status(bitrix, demo_portal.member_id, PortalStatus.NEEDS_REAUTH)  # opened while still active
    assert error_of(admin.post("/reseed")) == (409, "REAUTH_UNAVAILABLE")


def test_a_reseed_grant_works_once(fake, open_tab, demo_portal, bitrix):
    set_status(bitrix, demo_portal.member_id, PortalStatus.NEEDS_REAUTH)
    admin = open_tab(demo_portal)
    assert admin.post("/reseed").get_json()["result"] == {"status": "active"}
    set_status(bitrix, demo_portal.member_id, PortalStatus.NEEDS_REAUTH)
    assert error_of(admin.post("/reseed")) == (409, "REAUTH_UNAVAILABLE")


def test_a_reseed_grant_expires_in_minutes(fake, open_tab, demo_portal, bitrix):
    set_status(bitrix, demo_portal.member_id, PortalStatus.NEEDS_REAUTH)
    admin = open_tab(demo_portal)
    with bitrix.session_factory() as db, db.begin():
        db.query(ReseedGrantRecord).update({"expires_at": time.time() - 1})
    assert error_of(admin.post("/reseed")) == (409, "REAUTH_UNAVAILABLE")
    assert bitrix.portal(demo_portal.member_id).status == PortalStatus.NEEDS_REAUTH


def test_a_renewed_session_keeps_the_grant_while_its_user_is_an_administrator(fake, open_tab, demo_portal, bitrix):
    set_status(bitrix, demo_portal.member_id, PortalStatus.NEEDS_REAUTH)
    admin = open_tab(demo_portal)
    assert admin.renew().status_code == 200
    assert admin.post("/reseed").get_json()["result"] == {"status": "active"}


def test_reseed_on_a_working_portal_changes_nothing(fake, open_tab, demo_portal, bitrix):
    set_status(bitrix, demo_portal.member_id, PortalStatus.NEEDS_REAUTH)
    admin = open_tab(demo_portal)
    set_status(bitrix, demo_portal.member_id, PortalStatus.ACTIVE)  # another admin renewed meanwhile
    version = bitrix.tokens.current(demo_portal.member_id).version
    assert admin.post("/reseed").get_json()["result"] == {"status": "active"}
    assert bitrix.tokens.current(demo_portal.member_id).version == version


def test_reseed_with_an_expired_admin_token_fails_cleanly(fake, open_tab, demo_portal, bitrix):
    set_status(bitrix, demo_portal.member_id, PortalStatus.NEEDS_REAUTH)
    admin = open_tab(demo_portal)
    fake.expire_access_tokens()
    response = admin.post("/reseed")
    assert response.status_code == 401 and response.get_json()["error"] == "INVALID_AUTH"
    assert bitrix.portal(demo_portal.member_id).status == PortalStatus.NEEDS_REAUTH


# --- admission control -------------------------------------------------------------------------

def test_a_full_portal_queue_is_503_with_retry_after_without_waiting(admin, demo_portal, bitrix, monkeypatch):
    slept = []
    monkeypatch.setattr(bitrix.limiter, "sleep", slept.append)
    member_id = demo_portal.member_id
    for _ in range(70):  # other workers filled the bucket: the next slot is ~10 s away, the web cap is 3 s
        bitrix.limiter.store.reserve(f"portal:{member_id}", bitrix.limiter.rate_for(member_id))

    response = admin.get("/connectors")

    assert error_of(response) == (503, "PORTAL_BUSY")
    assert "Try again in a few seconds" in response.get_json()["error_description"]
    assert int(response.headers["Retry-After"]) >= 5
    assert slept == []  # refused at once, no request thread put to sleep


def test_our_own_refusals_map_to_429_and_503():
    assert status_for(BitrixError("TOO_MANY_REQUESTS")) == 429
    assert status_for(BitrixError("PORTAL_BUSY")) == 503


# --- endpoint URLs: administrators only, public hosts only -------------------------------------

class FakeDns:
    """A resolver for names under .test: never the network. Unknown names do not resolve."""

    def __init__(self, names: dict[str, str]):
        self.names = names
        self.lookups: list[str] = []

    def __call__(self, host, port, type=None, **_):
        self.lookups.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (self.names[host], port))]


@pytest.fixture
def dns(bitrix, monkeypatch):
    resolver = FakeDns({"db.corp.test": "10.1.2.3", "bi.partner.test": "93.184.216.34"})
    policy = EndpointPolicy(bitrix.endpoint_policy.allowed, resolver=resolver)
    monkeypatch.setattr(bitrix, "endpoint_policy", policy)
    return resolver


@pytest.fixture
def editor(open_tab, admin, demo_portal):
    user = demo_portal.add_user("Egor Editor")
    assert admin.put("/editors", json={"userIds": [user.id]}).status_code == 200
    return open_tab(demo_portal, user)


def test_an_editor_cannot_change_an_endpoint_url(editor, demo_portal, sent, dns):
    before = demo_portal.connectors[connector_id(demo_portal)]["urlCheck"]
    response = editor.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {
        "title": "Renamed", "urlCheck": "https://collector.attacker.test/check"}})

    assert error_of(response) == (403, "ENDPOINTS_ADMIN_ONLY")
    assert "Only a portal administrator" in response.get_json()["error_description"]
    assert [(f["field"], f["code"]) for f in response.get_json()["fields"]] == [("urlCheck", "ENDPOINTS_ADMIN_ONLY")]
    assert sent == [] and dns.lookups == []
    assert demo_portal.connectors[connector_id(demo_portal)]["urlCheck"] == before


def test_an_editor_still_edits_the_other_fields_and_may_resend_unchanged_urls(editor, demo_portal, sent, dns):
    current = editor.get(f"/connectors/{connector_id(demo_portal)}").get_json()["result"]
    response = editor.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {
        "title": "By editor", "urlCheck": current["urlCheck"], "urlData": current["urlData"]}})

    assert response.status_code == 200, response.get_json()
    assert sent == [("connector", connector_id(demo_portal), {"title": "By editor"})]
    assert dns.lookups == []


@pytest.mark.parametrize(("url", "words"), [
    ("http://10.0.0.5/check", "10.0.0.5 is a private address"),
    ("http://127.0.0.2:8080/check", "127.0.0.2 is a loopback address"),  # only 127.0.0.1 is allowed in tests
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://[::ffff:192.168.1.10]/check", "private"),
    ("https://db.corp.test/check", "db.corp.test resolves to 10.1.2.3, a private address"),
    ("https://nowhere.test/check", "could not resolve nowhere.test"),
])
def test_an_administrator_cannot_point_an_endpoint_at_an_inner_host(admin, demo_portal, sent, dns, url, words):
    response = admin.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {"urlData": url}})

    assert response.status_code == 400
    [error] = response.get_json()["fields"]
    assert error["field"] == "urlData" and error["code"] in ("ADDRESS_NOT_ALLOWED", "HOST_NOT_RESOLVED")
    assert words.lower() in error["message"].lower()
    assert sent == []


def test_an_administrator_points_an_endpoint_at_a_public_or_allowed_host(admin, demo_portal, sent, dns, fake):
    public, allowed = "https://bi.partner.test/data", f"{fake.url}/_demo_connector/v2/data"  # 127.0.0.1 is allowed
    for url in (public, allowed):
        response = admin.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {"urlData": url}})
        assert response.status_code == 200, response.get_json()
        assert demo_portal.connectors[connector_id(demo_portal)]["urlData"] == url
    assert [fields for _, _, fields in sent] == [{"urlData": public}, {"urlData": allowed}]
    assert dns.lookups == ["bi.partner.test"]  # an IP literal is checked without any lookup


def test_address_refusals_are_explained_in_russian(open_tab, demo_portal, dns):
    admin = open_tab(demo_portal, lang="ru")
    response = admin.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {"urlCheck": "http://10.0.0.5/"}})
    assert "публичный хост" in response.get_json()["fields"][0]["message"]


# --- creating, deleting and testing connectors and sources ------------------------------------

def custom_connector_fields(fake, **overrides) -> dict:
    base = f"{fake.url}/_demo_connector"
    return {"title": "Partner warehouse", "logo": "https://partner.test/logo.svg", "urlCheck": f"{base}/check",
            "urlData": f"{base}/data", "urlTableList": f"{base}/table_list",
            "urlTableDescription": f"{base}/table_description",
            "settings": [{"name": "Host", "code": "host", "type": "STRING"},
                         {"name": "API token", "code": "token", "type": "STRING"}], **overrides}


def test_an_administrator_creates_a_custom_connector_and_a_source_on_it(admin, fake, demo_portal):
    response = admin.post("/connectors", json={"fields": custom_connector_fields(fake)})
    assert response.status_code == 201, response.get_json()
    connector = response.get_json()["result"]
    assert connector["title"] == "Partner warehouse" and connector["secretSettings"] == ["token"]
    assert demo_portal.connectors[connector["id"]]["urlCheck"].endswith("/_demo_connector/check")
    response = admin.post("/sources", json={"fields": {
        "connectorId": connector["id"], "title": "Partner A", "description": "", "active": True, "code": "",
        "settings": {"host": "a.partner.test", "token": "partner-secret"}}})
    assert response.status_code == 201, response.get_json()
    source = response.get_json()["result"]
    assert "partner-secret" not in json.dumps(source)
    assert {row["code"]: row.get("value") for row in source["settings"]} == {"host": "a.partner.test", "token": None}
    assert demo_portal.sources[source["id"]]["title"] == "Partner A"
    # Bitrix24 called urlCheck with the settings before creating it.
    assert fake.state.outbound_calls[-1]["form"]["connection[token]"] == "partner-secret"


def test_creating_validates_first_and_changes_nothing(admin, editor, fake, demo_portal, dns):
    before = (dict(demo_portal.connectors), dict(demo_portal.sources))
    assert error_of(editor.post("/connectors", json={"fields": custom_connector_fields(fake)})) == (403, "ADMIN_ONLY")
    response = admin.post("/connectors", json={"fields": {"title": "Only a title"}})
    assert error_of(response) == (400, "VALIDATION_REQUIRED_FIELD_MISSING")
    assert {"logo", "urlCheck", "settings"} <= {item["field"] for item in response.get_json()["fields"]}
    inner = custom_connector_fields(fake, urlCheck="https://db.corp.test/check")
    assert error_of(admin.post("/connectors", json={"fields": inner})) == (400, "ADDRESS_NOT_ALLOWED")
    assert error_of(admin.post("/sources", json={"fields": {"title": "No connector"}}))[0] == 400
    response = admin.post("/sources", json={"fields": {"connectorId": connector_id(demo_portal), "title": "X",
                                                       "settings": {}, "active": False, "code": "mine"}})
    assert error_of(response) == (400, "VALIDATION_READ_ONLY_FIELD")
    assert {item["field"] for item in response.get_json()["fields"]} == {"active", "code"}
    response = admin.post("/sources", json={"fields": {"connectorId": connector_id(demo_portal), "title": "X",
                                                       "settings": {"nope": "1", "port": "x"}}})
    assert error_of(response) == (400, "UNKNOWN_SETTING_CODE")
    assert {item["field"] for item in response.get_json()["fields"]} == {"settings.nope", "settings.port"}
    assert error_of(admin.post("/sources", json={"fields": {"connectorId": 999, "title": "X", "settings": {}}})) == (
        404, "CONNECTOR_NOT_FOUND")
    assert (dict(demo_portal.connectors), dict(demo_portal.sources)) == before


def test_a_source_whose_check_fails_is_not_created_and_the_refusal_names_every_cause(editor, demo_portal):
    count = len(demo_portal.sources)
    response = editor.post("/sources", json={"fields": {"connectorId": connector_id(demo_portal), "title": "Bad",
                                                        "settings": {"host": "h", "port": "1", "token": "bad"}}})
    assert error_of(response) == (502, "SOURCE_CREATE_CONNECTION_ERROR")
    description = response.get_json()["error_description"]
    assert "did not answer" in description and "error status" in description and "empty body" in description
    assert len(demo_portal.sources) == count


def test_deleting_a_connector_explains_bitrix24s_refusal_then_deletes(admin, editor, fake, demo_portal):
    connector = admin.post("/connectors", json={"fields": custom_connector_fields(fake)}).get_json()["result"]
    source = admin.post("/sources", json={"fields": {"connectorId": connector["id"], "title": "Partner A",
                                                     "settings": {"host": "h", "token": "t"}}}).get_json()["result"]
    assert error_of(editor.delete(f"/connectors/{connector['id']}")) == (403, "ADMIN_ONLY")
    response = admin.delete(f"/connectors/{connector['id']}")
    assert error_of(response) == (409, "CONNECTOR_DELETE_RESTRICTED")
    assert "Delete the connector's sources first" in response.get_json()["error_description"]
    assert editor.delete(f"/sources/{source['id']}").get_json() == {"result": {"deleted": source["id"]}}
    assert admin.delete(f"/connectors/{connector['id']}").get_json() == {"result": {"deleted": connector["id"]}}
    assert connector["id"] not in demo_portal.connectors and source["id"] not in demo_portal.sources
    assert error_of(admin.delete(f"/connectors/{connector['id']}")) == (404, "CONNECTOR_NOT_FOUND")


def test_a_source_used_by_datasets_is_kept_with_a_sentence(fake, editor, demo_portal):
    fake.seed_table(demo_portal, source_id(demo_portal))
    response = editor.delete(f"/sources/{source_id(demo_portal)}")
    assert error_of(response) == (409, "SOURCE_IN_USE")
    assert "Delete those datasets in BI Builder first" in response.get_json()["error_description"]
    assert source_id(demo_portal) in demo_portal.sources


def test_the_gateways_own_connectors_are_not_deleted_here(open_tab, installed_portal):
    admin = open_tab(installed_portal)
    gateway = [item for item in admin.get("/connectors").get_json()["result"] if item not in not_gateway([item])]
    assert gateway
    response = admin.delete(f"/connectors/{gateway[0]['id']}")
    assert error_of(response) == (409, "GATEWAY_CONNECTOR")
    assert "remove the database" in response.get_json()["error_description"]
    assert gateway[0]["id"] in installed_portal.connectors
    response = admin.post("/sources", json={"fields": {"connectorId": gateway[0]["id"], "title": "X", "settings": {}}})
    assert error_of(response) == (409, "GATEWAY_CONNECTOR")


def test_test_connection_shows_what_bitrix24_saw(editor, reader, demo_portal, fake):
    response = editor.post(f"/sources/{source_id(demo_portal)}/check")
    assert response.get_json()["result"] == {
        "ok": True, "outcome": "ok", "status": 200,
        "message": "The connector's check URL accepted the connection: Bitrix24 can use this source."}
    check = fake.state.outbound_calls[-1]
    assert check["kind"] == "url_check" and check["form"]["connection[token]"] == "demo-token-1"  # stored values
    assert demo_portal.sources[source_id(demo_portal)]["title"] == "Main warehouse"
    demo_portal.sources[source_id(demo_portal)]["settings"][2]["value"] = "bad"  # the endpoint now answers 403
    result = editor.post(f"/sources/{source_id(demo_portal)}/check").get_json()["result"]
    assert result["ok"] is False and result["outcome"] == "refused"  # Bitrix24 does not say which cause
    assert "error status" in result["message"] and "did not answer" in result["message"]
    assert error_of(reader.post(f"/sources/{source_id(demo_portal)}/check")) == (403, "READ_ONLY")
    assert error_of(editor.post("/sources/999/check")) == (404, "SOURCE_NOT_FOUND")


def test_test_connection_in_russian(open_tab, demo_portal):
    result = open_tab(demo_portal, lang="ru").post(f"/sources/{source_id(demo_portal)}/check").get_json()["result"]
    assert result["outcome"] == "ok" and "принял подключение" in result["message"]


def test_test_connection_of_a_gateway_source_asks_the_gateway(open_tab, installed_portal, gateway_sqlite_dir, fake):
    import sqlite3

    path = gateway_sqlite_dir / "check-me.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER)")
    admin = open_tab(installed_portal)
    added = admin.post("/databases", json={"kind": "sqlite", "title": "Check me", "database": "check-me.db"})
    assert added.status_code == 201, added.get_json()
    source = added.get_json()["result"]["sourceId"]
    fake.clear_outbound_calls()
    assert admin.post(f"/sources/{source}/check").get_json()["result"]["outcome"] == "ok"
    assert fake.outbound_calls == []  # the gateway answered directly, Bitrix24 was not asked
    path.unlink()
    result = admin.post(f"/sources/{source}/check").get_json()["result"]
    assert result["outcome"] == "error_status" and result["status"] == 502 and result["ok"] is False
    assert "(502)" in result["message"]
    assert error_of(admin.delete(f"/sources/{source}")) == (409, "GATEWAY_SOURCE")
    # its settings hold the gateway's key and secret: changed only through the database entry
    assert error_of(admin.post(f"/sources/{source}", json={"fields": {"settings": {"secret": "mine"}}})) == (
        409, "GATEWAY_SOURCE")
    with sqlite3.connect(path) as db:  # back, so that Bitrix24's urlCheck on the update passes
        db.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER)")
    assert admin.post(f"/sources/{source}", json={"fields": {"description": "Checked"}}).status_code == 200
