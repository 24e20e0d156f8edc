"""Secrets stay out of the database in clear text, out of logs, and out of error messages; control
characters stay out at the edge; portal and OAuth endpoints must be public."""
import json
import logging
from pathlib import Path

import pytest
import requests
from sqlalchemy import select, text

from bitrix_app.models import Base
from tests.conftest import CLIENT_SECRET


def known_secrets(fake, portal, bitrix):
    return {
        "access token": bitrix.tokens.current(portal.member_id).value,
        "refresh token": bitrix.tokens.refresh_token(portal.member_id),
        "application token": portal.application_token,
    }


def test_database_holds_no_token_in_clear_text(fake, installed_portal, bitrix, database_url):
    fake.expire_access_tokens(installed_portal)
    bitrix.client(installed_portal.member_id).call("user.admin")  # refresh, store a new pair
    secrets = known_secrets(fake, installed_portal, bitrix)

    with bitrix.session_factory() as session:
        dump = " ".join(
            repr(row) for table in Base.metadata.sorted_tables for row in session.execute(select(table)).all()
        )
    for name, value in secrets.items():
        assert value not in dump, f"{name} stored in clear text"
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        with bitrix.session_factory() as session:
            session.execute(text("PRAGMA wal_checkpoint(FULL)"))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        for name, value in secrets.items():
            assert value.encode() not in raw, f"{name} in the SQLite file"


def test_no_secret_appears_in_logs(fake, portal, bitrix, caplog):
    caplog.set_level(logging.DEBUG)
    fake.install(portal)
    fake.finish_install(portal)
    fake.expire_access_tokens(portal)
    bitrix.client(portal.member_id).call("user.admin")  # GET /oauth/token/?refresh_token=…&client_secret=…
    fake.uninstall(portal)

    assert "oauth/token" in caplog.text  # the token request itself was logged…
    for value in [*known_secrets_after_uninstall(fake, portal), CLIENT_SECRET]:
        assert value not in caplog.text  # …without its secrets


def known_secrets_after_uninstall(fake, portal):
    """Every token the fake ever issued for the portal, plus its application token."""
    issued = [token.value for token in fake.state.access_tokens.values() if token.member_id == portal.member_id]
    issued += [token.value for token in fake.state.refresh_tokens.values() if token.member_id == portal.member_id]
    assert issued, "the fake issued no tokens?"
    return issued + [portal.application_token]


# --- control characters are refused at the edge (issue 9) ------------------------------------------

def installer_fields(fake, portal, **overrides) -> dict:
    tokens = fake.issue_tokens(portal, portal.admin)
    return {"AUTH_ID": tokens["access_token"], "REFRESH_ID": tokens["refresh_token"], "AUTH_EXPIRES": "3600",
            "APPLICATION_TOKEN": "app-token", "member_id": portal.member_id, **overrides}


def stored_portals(bitrix) -> int:
    from sqlalchemy import func

    from bitrix_app.models import Portal

    with bitrix.session_factory() as session:
        return session.scalar(select(func.count()).select_from(Portal))


def assert_invalid_characters(response, field: str, *, as_json: bool):
    assert response.status_code == 400, response.text
    if as_json:
        body = response.json()
        assert body["error"] == "INVALID_CHARACTERS"
        assert field in body["error_description"] and "control character" in body["error_description"]
    else:
        assert "INVALID_CHARACTERS" in response.text and "control character" in response.text


@pytest.mark.parametrize("member_id", ["abc\x00def", "abc\x1bdef", "abc\x7f", "abc\x85"])
def test_install_with_a_control_character_is_a_400_and_stores_nothing(fake, portal, bitrix, app, member_id):
    response = requests.post(f"{app.live_url}/install", params={"DOMAIN": "x", "LANG": "en"},
                             data=installer_fields(fake, portal, member_id=member_id), timeout=10)
    assert_invalid_characters(response, "member_id", as_json=False)
    assert stored_portals(bitrix) == 0


def test_a_control_character_in_the_query_string_is_refused_too(fake, portal, bitrix, app):
    response = requests.post(f"{app.live_url}/install", params={"DOMAIN": "x", "LANG": "en\x00"},
                             data=installer_fields(fake, portal), timeout=10)
    assert_invalid_characters(response, "LANG", as_json=False)
    assert stored_portals(bitrix) == 0


def test_event_with_a_nul_in_member_id_is_a_json_400(fake, installed_portal, app):
    response = requests.post(f"{app.live_url}/events", data={
        "event": "ONAPPUNINSTALL", "auth[member_id]": installed_portal.member_id + "\x00",
        "auth[application_token]": installed_portal.application_token,
    }, timeout=10)
    assert_invalid_characters(response, "auth[member_id]", as_json=True)


def test_event_with_a_nul_in_a_field_name_is_a_json_400(installed_portal, app):
    response = requests.post(f"{app.live_url}/events", data={
        "event": "ONAPPUNINSTALL", "auth[member_id]": installed_portal.member_id, "auth[x\x00]": "1",
        "auth[application_token]": installed_portal.application_token,
    }, timeout=10)
    assert_invalid_characters(response, "auth[x\\x00]", as_json=True)


def test_opening_the_tab_with_a_nul_in_member_id_is_a_400(fake, installed_portal, app):
    from bitrix_app.sandbox.fake.lifecycle import frame_request

    query, form = frame_request(fake, installed_portal, installed_portal.admin)
    form["member_id"] += "\x00"
    response = requests.post(f"{app.live_url}/app", params=query, data=form, timeout=10)
    assert_invalid_characters(response, "member_id", as_json=False)


# --- /app tells an outsider nothing about a member_id (issue 15) ----------------------------------

def test_unknown_uninstalled_and_wrong_token_openings_get_the_same_answer(fake, installed_portal, bitrix, app,
                                                                          caplog):
    from bitrix_app.models import Portal, PortalStatus
    from bitrix_app.sandbox.fake.lifecycle import frame_request

    other = fake.add_portal(domain="beta.bitrix24.test")
    assert fake.install(other).status_code == 200
    with bitrix.session_factory() as session, session.begin():
        session.scalars(select(Portal).where(Portal.member_id == other.member_id)).one().status = \
            PortalStatus.UNINSTALLED

    def opening(portal, **changes):
        query, form = frame_request(fake, portal, portal.admin)
        return requests.post(f"{app.live_url}/app", params=query, data={**form, **changes}, timeout=10)

    caplog.set_level(logging.INFO, logger="bitrix_app")
    answers = [opening(installed_portal, member_id="no-such-member"), opening(other),
               opening(installed_portal, APPLICATION_TOKEN="wrong")]

    assert {(answer.status_code, answer.text) for answer in answers} == {(401, answers[0].text)}
    assert "APP_NOT_AUTHORIZED" in answers[0].text
    for reason in ("unknown member_id", "uninstalled", "application token does not match"):
        assert reason in caplog.text  # the server log keeps the cases apart
    assert installed_portal.application_token not in caplog.text


@pytest.fixture
def tab_admin(open_tab, demo_portal):
    return open_tab(demo_portal)


@pytest.mark.parametrize("fields, where", [
    ({"description": "a\x00b"}, "fields.description"),
    ({"settings": [{"name": "Host", "code": "host\x01", "type": "STRING"}]}, "fields.settings[0].code"),
    ({"title\x00": "x"}, "fields.title\\x00"),
    ({"description": "lone \ud800 surrogate"}, "fields.description"),
])
def test_api_json_with_a_control_character_is_a_400_and_nothing_is_sent(tab_admin, demo_portal, fake, fields, where):
    connector_id = demo_portal.demo["connector_id"]
    body = json.dumps({"fields": fields})  # \u0000 and \ud800 escapes, as a browser's JSON.stringify sends them
    response = tab_admin.post(f"/connectors/{connector_id}", data=body, content_type="application/json")

    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == "INVALID_CHARACTERS"
    assert where in response.get_json()["error_description"]
    assert fake.count_requests(demo_portal, "biconnector.connector.update") == 0


def test_api_accepts_tabs_and_line_breaks(tab_admin, demo_portal):
    connector_id = demo_portal.demo["connector_id"]
    response = tab_admin.post(f"/connectors/{connector_id}", json={"fields": {"description": "one\ttwo\r\nthree"}})
    assert response.status_code == 200, response.get_json()
    assert demo_portal.connectors[connector_id]["description"] == "one\ttwo\r\nthree"


def test_api_checks_the_session_before_reading_the_body(client):
    response = client.post("/api/connectors/1", json={"fields": {"description": "a\x00b"}})
    assert response.status_code == 401
    assert response.get_json()["error"] == "SESSION_REQUIRED"


def test_the_gateway_endpoints_are_left_to_their_own_validation(client):
    response = client.get("/gateway/no-such-key/check", query_string={"searchString": "a\x00b"})
    assert response.get_json().get("error") != "INVALID_CHARACTERS"
    assert response.status_code != 400


# --- portal and OAuth endpoints must be public (issue 11) ------------------------------------------

def refusing_resolver(*args, **kwargs):
    raise AssertionError("no host name may be resolved here")


def fake_resolver(answers: dict[str, list[str]]):
    """getaddrinfo over a fixed table: never the network."""
    import socket

    def resolve(host, port, *args, **kwargs):
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (address, port)) for address in answers[host]]

    return resolve


def production_settings(resolver):
    from bitrix_app.services.settings import BitrixSettings

    return BitrixSettings(client_id="c", client_secret="s", resolver=resolver)


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/rest/", "https://169.254.169.254/latest/", "https://10.1.2.3/rest/", "https://192.168.0.7/",
    "https://[::1]/rest/", "https://[fd00:ec2::254]/", "https://[::ffff:10.0.0.1]/", "https://127.1/",
    "https://2130706433/", "https://0x7f.0.0.1/", "https://localhost/rest/", "http://portal.example.com/rest/",
])
def test_portal_endpoints_on_non_public_addresses_are_refused(url):
    assert production_settings(refusing_resolver).is_acceptable_url(url) is False


def test_a_public_address_literal_is_accepted_without_resolving():
    assert production_settings(refusing_resolver).is_acceptable_url("https://93.184.216.34/rest/") is True


@pytest.mark.parametrize("answers, acceptable", [
    ({"portal.example.com": ["93.184.216.34"]}, True),
    ({"portal.example.com": ["10.0.0.5"]}, False),
    ({"portal.example.com": ["169.254.169.254"]}, False),
    ({"portal.example.com": ["93.184.216.34", "127.0.0.1"]}, False),  # round-robin must not smuggle one in
    ({"portal.example.com": ["::1"]}, False),
    ({}, False),  # does not resolve
])
def test_portal_host_names_are_judged_by_every_address_they_resolve_to(answers, acceptable):
    settings = production_settings(fake_resolver(answers))
    assert settings.is_acceptable_url("https://portal.example.com/rest/") is acceptable


def test_insecure_mode_accepts_loopback_http_without_resolving():
    from dataclasses import replace

    settings = replace(production_settings(refusing_resolver), allow_insecure=True)
    assert settings.is_acceptable_url("http://127.0.0.1:5001/rest/") is True
    assert settings.is_acceptable_url("http://sandbox.test/rest/") is True
