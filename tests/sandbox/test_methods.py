"""app.info, user.*, profile, event.* and placement.* on the portal."""
from __future__ import annotations

import pytest


@pytest.fixture
def employee_token(b24, portal) -> str:
    user = portal.add_user(name="Ivan Petrov", admin=False)
    return b24.issue_tokens(portal, user)["access_token"]


def test_portal_app_info_tracks_installation(b24, portal, call):
    before = call("app.info").json()["result"]
    b24.finish_install(portal)
    after = call("app.info").json()["result"]

    assert before["INSTALLED"] is False and after["INSTALLED"] is True
    assert (after["CODE"], after["VERSION"], after["STATUS"], after["PAYMENT_EXPIRED"]) == (b24.client_id, 1, "P", "N")
    assert {"ID", "DAYS", "LANGUAGE_ID", "LICENSE", "LICENSE_TYPE", "LICENSE_FAMILY"} <= set(after)


def test_users_and_profiles(call, employee_token):
    admin = call("user.current").json()["result"]
    employee = call("user.current", auth=employee_token).json()["result"]
    profile = call("profile", auth=employee_token).json()["result"]

    assert (admin["ID"], admin["NAME"], admin["LAST_NAME"]) == ("1", "Anna", "Admin")
    assert (employee["ID"], employee["NAME"], employee["LAST_NAME"]) == ("2", "Ivan", "Petrov")
    assert call("user.admin").json()["result"] is True
    assert call("user.admin", auth=employee_token).json()["result"] is False
    assert profile == {"ID": "2", "ADMIN": False, "NAME": "Ivan", "LAST_NAME": "Petrov", "PERSONAL_GENDER": "",
                       "TIME_ZONE": ""}



def test_user_get_filters_by_id_and_fields(portal, call, employee_token):
    portal.add_user(name="Olga Sidorova")
    by_ids = call("user.get", {"FILTER": {"ID": [1, 3, 99]}}).json()["result"]
    top_level = call("user.get", {"ID": 2}, auth=employee_token).json()["result"]  # the docs' own example
    by_name = call("user.get", {"FILTER": {"LAST_NAME": "Sidorova"}}).json()["result"]

    assert [(user["ID"], user["NAME"], user["LAST_NAME"]) for user in by_ids] == [("1", "Anna", "Admin"),
                                                                              ("3", "Olga", "Sidorova")]
    assert [user["ID"] for user in top_level] == ["2"]
    assert [user["ID"] for user in by_name] == ["3"]
    assert call("user.get", {"FILTER": {"ID": 99}}).json()["result"] == []


def test_user_search_matches_the_start_of_names(portal, call, employee_token):
    portal.add_user(name="Olga Sidorova")

    def found(params):
        return [user["ID"] for user in call("user.search", params).json()["result"]]

    assert found({"FILTER": {"FIND": "ol"}}) == ["3"]
    assert found({"FILTER": {"FIND": "petrov iv"}}) == ["2"]
    assert found({"FILTER": {"FIND": "etrov"}}) == []  # a right LIKE: only the start of a word
    assert found({"FILTER": {"LAST_NAME": "adm"}}) == ["1"]
    assert found({}) == ["1", "2", "3"]

def test_event_bind_get_unbind(portal, call, receiver):
    handler = f"{receiver.url}/events"

    first = call("event.bind", {"event": "onAppUninstall", "handler": handler})
    duplicate = call("event.bind", {"EVENT": "ONAPPUNINSTALL", "HANDLER": handler})
    listed = call("event.get").json()["result"]
    removed = call("event.unbind", {"event": "ONAPPUNINSTALL", "handler": handler}).json()["result"]

    assert first.json()["result"] is True and duplicate.json()["result"] is True
    assert listed == [{"event": "ONAPPUNINSTALL", "handler": handler, "auth_type": "0", "offline": 0}]
    assert removed == {"count": 1} and portal.bound_events == []


def test_event_bind_errors(call, employee_token, receiver):
    unknown = call("event.bind", {"event": "ONNOTHING", "handler": f"{receiver.url}/e"})
    no_handler = call("event.bind", {"event": "ONAPPINSTALL"})
    offline = call("event.bind", {"event": "ONAPPUPDATE", "event_type": "offline"}, auth=employee_token)
    foreign_auth = call("event.bind", {"event": "ONAPPUPDATE", "handler": f"{receiver.url}/e", "auth_type": 1},
                        auth=employee_token)

    assert (unknown.status_code, unknown.json()["error"]) == (400, "ERROR_EVENT_NOT_FOUND")
    assert (no_handler.status_code, no_handler.json()["error"]) == (400, "ERROR_ARGUMENT")
    assert offline.status_code == 403
    assert offline.json()["error_description"] == "Offline events binding requires administrator access rights"
    assert foreign_auth.json()["error_description"] == "Event binding with AUTH_TYPE requires administrator access rights"
    assert call("event.bind", {"event": "ONAPPUPDATE", "handler": f"{receiver.url}/e"},
                auth=employee_token).json()["result"] is True


def test_event_get_shows_non_admins_only_their_own(call, employee_token, receiver):
    call("event.bind", {"event": "ONAPPUPDATE", "handler": f"{receiver.url}/admin"})
    call("event.bind", {"event": "ONAPPUPDATE", "handler": f"{receiver.url}/mine"}, auth=employee_token)

    assert [item["handler"] for item in call("event.get", auth=employee_token).json()["result"]] == [f"{receiver.url}/mine"]
    assert len(call("event.get").json()["result"]) == 2


def test_placement_bind_get_unbind(portal, call, receiver):
    bound = call("placement.bind", {"PLACEMENT": "LEFT_MENU", "HANDLER": f"{receiver.url}/menu", "TITLE": "Reports"})
    again = call("placement.bind", {"placement": "LEFT_MENU", "handler": f"{receiver.url}/menu", "title": "Reports"})
    listed = call("placement.get").json()["result"]
    removed = call("placement.unbind", {"PLACEMENT": "LEFT_MENU"}).json()["result"]

    assert bound.json()["result"] is True and again.json()["result"] is True
    assert len(listed) == 1
    assert {key: listed[0][key] for key in ("placement", "handler", "title", "userId")} == {
        "placement": "LEFT_MENU", "handler": f"{receiver.url}/menu", "title": "Reports", "userId": 0}
    assert removed == {"count": 1} and portal.placements == []


def test_placement_errors(call, employee_token, receiver):
    handler = f"{receiver.url}/h"
    not_admin = call("placement.bind", {"PLACEMENT": "LEFT_MENU", "HANDLER": handler}, auth=employee_token)
    unknown = call("placement.bind", {"PLACEMENT": "NOWHERE", "HANDLER": handler})
    missing = call("placement.bind", {"PLACEMENT": "LEFT_MENU"})
    bad_url = call("placement.bind", {"PLACEMENT": "LEFT_MENU", "HANDLER": "ftp://x/h"})
    call("placement.bind", {"PLACEMENT": "REST_APP_URI", "HANDLER": handler})
    second = call("placement.bind", {"PLACEMENT": "REST_APP_URI", "HANDLER": f"{handler}2"})

    assert (not_admin.status_code, not_admin.json()["error"]) == (403, "ACCESS_DENIED")
    assert unknown.json()["error"] == "ERROR_PLACEMENT_NOT_FOUND"
    assert missing.json() == {"error": "ERROR_ARGUMENT", "error_description": "Argument 'HANDLER' is null or empty",
                              "argument": "HANDLER"}
    assert bad_url.json()["error"] == "ERROR_UNSUPPORTED_PROTOCOL"
    assert second.json()["error"] == "ERROR_PLACEMENT_MAX_COUNT"
    assert call("placement.get", auth=employee_token).status_code == 403
    assert "LEFT_MENU" in call("placement.list", auth=employee_token).json()["result"]
