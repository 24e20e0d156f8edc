"""The portal as a client of our app: installer and iframe POSTs, events, update and uninstall."""
from __future__ import annotations

import json

import pytest
import requests

FRAME_BODY_FIELDS = {"AUTH_ID", "AUTH_EXPIRES", "REFRESH_ID", "SERVER_ENDPOINT", "APPLICATION_TOKEN",
                     "APPLICATION_SCOPE", "member_id", "status", "PLACEMENT", "PLACEMENT_OPTIONS"}
AUTH_KEYS = ["access_token", "expires_in", "scope", "domain", "server_endpoint", "status", "client_endpoint",
             "member_id"]


def bind(call, receiver, event: str, path: str = "/events") -> None:
    assert call("event.bind", {"event": event, "handler": f"{receiver.url}{path}"}).json()["result"] is True


def auth_of(form: dict) -> dict:
    return {key[5:-1]: value for key, value in form.items() if key.startswith("auth[")}


def test_ui_install_posts_the_installer_like_bitrix24(b24, portal, receiver):
    response = b24.install(portal)

    assert response.status_code == 200
    [posted] = receiver.to("/install")
    assert set(posted["args"]) == {"DOMAIN", "PROTOCOL", "LANG", "APP_SID"}
    assert (posted["args"]["DOMAIN"], posted["args"]["PROTOCOL"], posted["args"]["LANG"]) == (portal.domain, "0", "en")
    assert set(posted["form"]) == FRAME_BODY_FIELDS
    assert posted["form"]["APPLICATION_TOKEN"] == portal.application_token
    assert posted["form"]["member_id"] == portal.member_id and posted["form"]["PLACEMENT"] == "DEFAULT"
    assert posted["form"]["SERVER_ENDPOINT"] == f"{b24.url}/rest/"
    assert posted["content_type"] == "application/x-www-form-urlencoded"
    assert portal.app_state == "added" and not portal.installed
    token = posted["form"]["AUTH_ID"]
    assert requests.get(f"{portal.client_endpoint}app.info", params={"auth": token}, timeout=10).status_code == 200


def test_no_events_before_install_finish_then_onappinstall(b24, portal, call, receiver):
    b24.install(portal)
    bind(call, receiver, "ONAPPINSTALL")
    bind(call, receiver, "ONAPPTEST", "/test")

    early = b24.trigger_event(portal, "ONAPPTEST")
    finish = b24.finish_install(portal)
    late = b24.trigger_event(portal, "ONAPPTEST", data={"FIELDS": {"ID": "5"}})

    assert early == [] and portal.installed
    assert finish.status_code == 200
    [install_event] = receiver.to("/events")
    assert install_event["form"]["event"] == "ONAPPINSTALL"
    assert {"data[VERSION]": "1", "data[ACTIVE]": "Y", "data[INSTALLED]": "Y", "data[LANGUAGE_ID]": "en"}.items() \
        <= install_event["form"].items()
    assert "refresh_token" in auth_of(install_event["form"])
    assert [response.status_code for response in late] == [200]
    [test_event] = receiver.to("/test")
    assert test_event["form"]["data[FIELDS][ID]"] == "5"


def test_event_payload_format(b24, installed, call, receiver):
    bind(call, receiver, "ONAPPTEST")

    b24.trigger_event(installed, "ONAPPTEST", data={"FIELDS": {"ID": "7"}})

    [event] = receiver.to("/events")
    form = event["form"]
    assert list(form)[:3] == ["event", "event_handler_id", "data[FIELDS][ID]"]
    assert form["event"] == "ONAPPTEST" and int(form["ts"]) > 0 and form["event_handler_id"].isdigit()
    auth = auth_of(form)
    assert list(auth) == [*AUTH_KEYS, "application_token"]  # no refresh_token for ordinary events
    assert auth["domain"] == installed.domain and auth["client_endpoint"] == installed.client_endpoint
    assert auth["application_token"] == installed.application_token
    assert requests.get(f"{installed.client_endpoint}profile", params={"auth": auth["access_token"]},
                        timeout=10).status_code == 200


def test_forged_and_tokenless_events(b24, installed, call, receiver):
    bind(call, receiver, "ONAPPTEST", "/bound")

    forged = b24.send_event(installed, "ONAPPTEST", auth_overrides={"application_token": "forged", "member_id": None})
    tokenless = b24.send_event(installed, "ONAPPTEST", with_tokens=False)

    assert forged.status_code == 200 and tokenless.status_code == 200
    forged_auth, tokenless_auth = (auth_of(entry["form"]) for entry in receiver.to("/bound"))
    assert forged_auth["application_token"] == "forged" and "member_id" not in forged_auth
    assert "access_token" not in tokenless_auth
    assert tokenless_auth["application_token"] == installed.application_token


def test_send_event_reaches_the_app_even_without_a_handler_or_installation(b24, portal, receiver):
    b24.uninstall(portal)

    response = b24.send_event(portal, "ONAPPUNINSTALL", data={"CLEAN": "0"})

    assert response.status_code == 200
    [event] = receiver.to("/events")
    assert "access_token" not in auth_of(event["form"])  # ONAPPUNINSTALL carries no tokens
    assert "event_handler_id" not in event["form"]


def test_events_are_not_retried(b24, installed, call, receiver):
    bind(call, receiver, "ONAPPTEST")
    receiver.answers["/events"] = (500, "boom")

    [response] = b24.trigger_event(installed, "ONAPPTEST")

    assert response.status_code == 500 and len(receiver.to("/events")) == 1
    assert b24.app_calls[-1]["kind"] == "event" and b24.app_calls[-1]["ok"] is False
    assert b24.outbound_calls == []  # that list is for connector endpoints only


def test_install_without_ui_delivers_onappinstall_to_the_install_handler(b24, portal, receiver):
    response = b24.install(portal, ui=False)

    assert response.status_code == 200 and portal.installed
    [event] = receiver.to("/events")
    auth = auth_of(event["form"])
    assert event["form"]["event"] == "ONAPPINSTALL" and "event_handler_id" not in event["form"]
    assert list(auth) == [*AUTH_KEYS, "refresh_token", "application_token"]


@pytest.mark.parametrize("removed_first", [False, True])
def test_update_app(b24, installed, call, receiver, removed_first):
    b24.config.handlers_removed_before_update_event = removed_first
    bind(call, receiver, "ONAPPUPDATE")
    old_token = installed.application_token

    def rebind_while_handling(entry):
        # What an app does on ONAPPUPDATE: re-bind its handlers with the token it just got.
        call("event.bind", {"event": "ONAPPUNINSTALL", "handler": f"{receiver.url}/events"},
             auth=auth_of(entry["form"])["access_token"])

    receiver.hooks["/events"] = rebind_while_handling
    response = b24.update_app(installed)

    assert response.status_code == 200
    assert installed.application_token != old_token and installed.app_version == 2
    [event] = receiver.to("/events")
    assert event["form"]["data[VERSION]"] == "2" and event["form"]["data[PREVIOUS_VERSION]"] == "1"
    auth = auth_of(event["form"])
    assert auth["application_token"] == installed.application_token and "refresh_token" in auth
    rebound = [record["event"] for record in installed.bound_events]
    assert rebound == (["ONAPPUNINSTALL"] if removed_first else [])


def test_update_event_without_refresh_token_by_switch(b24, installed, call, receiver):
    b24.config.update_event_refresh_token = False
    bind(call, receiver, "ONAPPUPDATE")

    b24.update_app(installed)

    [event] = receiver.to("/events")
    auth = auth_of(event["form"])
    assert "refresh_token" not in auth and auth["access_token"]
    assert auth["application_token"] == installed.application_token
    b24.install(installed, ui=False)
    assert "refresh_token" in auth_of(receiver.to("/events")[-1]["form"])  # ONAPPINSTALL still has one


def test_update_before_install_finish_sends_nothing(b24, portal, call, receiver):
    bind(call, receiver, "ONAPPUPDATE")

    assert b24.update_app(portal) is None and receiver.to("/events") == []
    assert portal.bound_events == []


def test_uninstall_revokes_tokens_first_and_removes_handlers(b24, installed, call, receiver):
    bind(call, receiver, "ONAPPUNINSTALL")
    call("placement.bind", {"PLACEMENT": "LEFT_MENU", "HANDLER": f"{receiver.url}/menu"})
    tokens = b24.issue_tokens(installed)
    seen_by_handler = {}

    def use_stored_token(entry):
        # What our handler sees if it tries a stored token while handling ONAPPUNINSTALL.
        seen_by_handler["rest"] = requests.get(f"{installed.client_endpoint}profile",
                                               params={"auth": tokens["access_token"]}, timeout=10).json()
        seen_by_handler["placements"] = list(installed.placements)

    receiver.hooks["/events"] = use_stored_token
    response = b24.uninstall(installed, clean=True)

    [event] = receiver.to("/events")
    auth = auth_of(event["form"])
    assert response.status_code == 200
    assert event["form"]["event"] == "ONAPPUNINSTALL" and event["form"]["data[CLEAN]"] == "1"
    assert set(auth) == {"domain", "server_endpoint", "client_endpoint", "member_id", "application_token"}
    assert seen_by_handler["rest"]["error"] == "APPLICATION_NOT_FOUND"  # revoked before delivery
    assert len(seen_by_handler["placements"]) == 1  # handlers are removed after delivery
    assert installed.bound_events == [] and installed.placements == [] and not installed.installed
    refreshed = requests.get(f"{b24.url}/oauth/token/", params={
        "grant_type": "refresh_token", "client_id": b24.client_id, "client_secret": b24.client_secret,
        "refresh_token": tokens["refresh_token"]}, timeout=10)
    assert refreshed.json()["error"] == "invalid_grant"


def test_reinstall_gets_a_new_application_token_and_old_tokens_stay_dead(b24, installed, receiver):
    old_app_token = installed.application_token
    old_access = b24.issue_tokens(installed)["access_token"]
    b24.uninstall(installed)

    b24.install(installed)

    assert installed.application_token != old_app_token and installed.app_state == "added"
    response = requests.get(f"{installed.client_endpoint}profile", params={"auth": old_access}, timeout=10)
    assert response.json()["error"] == "invalid_token"


def test_open_app_posts_the_app_page_for_the_user(b24, installed, receiver):
    user = installed.add_user(name="Ivan Petrov")

    response = b24.open_app(installed, user, placement_options={"any": "thing"}, lang="de")

    assert response.status_code == 200
    [opened] = receiver.to("/app")
    assert opened["args"]["LANG"] == "de" and set(opened["form"]) == FRAME_BODY_FIELDS
    assert json.loads(opened["form"]["PLACEMENT_OPTIONS"]) == {"any": "thing"}
    profile = requests.get(f"{installed.client_endpoint}profile", params={"auth": opened["form"]["AUTH_ID"]},
                           timeout=10).json()["result"]
    assert profile["ID"] == str(user.id)


def test_open_app_uses_a_bound_placement_handler(b24, installed, call, receiver):
    call("placement.bind", {"PLACEMENT": "LEFT_MENU", "HANDLER": f"{receiver.url}/menu?x=1"})

    b24.open_app(installed, placement="LEFT_MENU")

    [opened] = receiver.to("/menu")
    assert opened["args"]["x"] == "1" and opened["form"]["PLACEMENT"] == "LEFT_MENU"
