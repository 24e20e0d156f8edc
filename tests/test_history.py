"""Change history, versions and edit conflicts (services/history.py), user names (services/users.py),
through the tab's API over HTTP against the fake portal, the CLI and plans."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import event, select

from bitrix_app.models import ChangeRecord, PortalUserName
from bitrix_app.services.history import Actor, History, source_changes, version_of
from bitrix_app.services.plans import PlanRunner, parse_plan
from bitrix_app.services.secret_settings import SecretSettings

SECRET = "demo-token-1"  # the first demo source's `token`


@pytest.fixture
def admin(open_tab, demo_portal):
    return open_tab(demo_portal)


def connector_id(portal) -> int:
    return portal.demo["connector_id"]


def source_id(portal, index: int = 0) -> int:
    return portal.demo["source_ids"][index]


def result(response, status: int = 200):
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()["result"]


def stored_history(bitrix) -> str:
    """Everything the history table holds, as text."""
    with bitrix.session_factory() as db:
        return json.dumps([[r.actor_name, r.changes] for r in db.scalars(select(ChangeRecord))], ensure_ascii=False)


# --- versions and changes, as plain Python --------------------------------------------------------

def test_a_version_follows_every_editable_field_and_tells_nothing_about_secrets():
    source = {"id": 1, "title": "Main", "connectorId": 3, "dateUpdate": "01.01.2026 10:00:00",
              "settings": [{"code": "host", "value": "db"}, {"code": "token", "value": "abc"}]}
    version = version_of("source", source, "key")
    assert version == version_of("source", {**source, "dateUpdate": "02.01.2026 10:00:00"}, "key")
    assert version != version_of("source", {**source, "title": "Other"}, "key")
    assert version != version_of("source", {**source, "settings": [{"code": "host", "value": "db2"},
                                                                  {"code": "token", "value": "abc"}]}, "key")
    assert version != version_of("source", source, "another key")


def test_a_version_cannot_confirm_a_guessed_secret():
    """Only whether a secret is set counts: comparing versions never tells a secret's value."""
    def source(token: str) -> dict:
        return {"id": 1, "settings": [{"code": "host", "value": "db"}, {"code": "token", "value": token}]}
    assert version_of("source", source("abc"), "key") == version_of("source", source("guess"), "key")
    assert version_of("source", source("abc"), "key") != version_of("source", source(""), "key")
    marked_host = lambda code: code == "host"  # noqa: E731
    assert version_of("source", source("abc"), "key", marked_host) != version_of("source", source("guess"), "key",
                                                                                  marked_host)


def test_secret_settings_are_recorded_masked_and_counted_when_sent():
    before = {"settings": [{"code": "host", "value": "a"}, {"code": "token", "value": "old"}]}
    after = {"settings": [{"code": "host", "value": "b"}, {"code": "token", "value": "old"}]}
    secret = lambda code: code == "token"  # noqa: E731
    assert source_changes(before, after, secret) == [
        {"field": "settings.host", "old": "a", "new": "b", "secret": False}]
    assert source_changes(before, after, secret, sent_codes=["token"])[1] == {
        "field": "settings.token", "old": "***", "new": "***", "secret": True}


def test_the_operator_is_named_from_the_environment():
    assert Actor.operator("cli", {"BITRIX_OPERATOR": "ops-anna", "USER": "root"}).to_dict() == {
        "kind": "cli", "id": None, "name": "ops-anna"}
    assert Actor.operator("plan", {"USER": "deploy"}).name == "deploy"


# --- the API: versions, conflicts, history, revert --------------------------------------------------

def test_objects_carry_a_version_and_their_last_change(admin, demo_portal):
    connector = result(admin.get(f"/connectors/{connector_id(demo_portal)}"))
    source = result(admin.get(f"/sources/{source_id(demo_portal)}"))
    assert connector["version"] and source["version"] and connector["lastChange"] is None
    result(admin.post(f"/connectors/{connector_id(demo_portal)}",
                      json={"fields": {"title": "Warehouse"}, "ifVersion": connector["version"]}))
    [listed] = [item for item in result(admin.get("/connectors")) if item["id"] == connector_id(demo_portal)]
    assert listed["version"] != connector["version"]
    assert listed["lastChange"]["actor"] == {"kind": "user", "id": 1, "name": "Anna Admin"}  # user.get, cached
    assert listed["lastChange"]["via"] == "tab" and listed["lastChange"]["at"].startswith("20")
    assert [item["lastChange"] for item in result(admin.get("/sources"))] == [None, None]


def test_a_stale_version_is_a_conflict_that_says_who_changed_what(admin, open_tab, fake, demo_portal):
    other = open_tab(demo_portal, demo_portal.add_user("Boris Second", admin=True))
    result(admin.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {"sort": 5}}))  # an older change
    loaded = result(admin.get(f"/connectors/{connector_id(demo_portal)}"))
    result(other.post(f"/connectors/{connector_id(demo_portal)}",
                      json={"fields": {"description": "Boris's text"}, "ifVersion": loaded["version"]}))
    response = admin.post(f"/connectors/{connector_id(demo_portal)}", json={
        "fields": {"title": "Anna's title", "description": "Anna's text"}, "ifVersion": loaded["version"]})
    assert response.status_code == 409
    body = response.get_json()
    assert body["error"] == "EDIT_CONFLICT" and "changed this" in body["error_description"]
    conflict = body["conflict"]
    assert conflict["lastChange"]["actor"]["name"] == "Boris Second"
    assert {"field": "description", "yours": "Anna's text", "theirs": "Boris's text"} in conflict["fields"]
    assert conflict["current"]["description"] == "Boris's text" and conflict["current"]["version"]
    assert demo_portal.connectors[connector_id(demo_portal)]["title"] == "Demo warehouse"  # nothing written
    # Saving again from the current version works; without ifVersion there is no check (old clients).
    result(admin.post(f"/connectors/{connector_id(demo_portal)}",
                      json={"fields": {"title": "Anna's title"}, "ifVersion": conflict["current"]["version"]}))
    result(admin.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {"sort": 7}}))


def test_a_source_conflict_never_shows_secret_values(admin, demo_portal):
    loaded = result(admin.get(f"/sources/{source_id(demo_portal)}"))
    result(admin.post(f"/sources/{source_id(demo_portal)}", json={
        "fields": {"settings": {"token": "t-2", "host": "theirs.test"}}}))
    response = admin.post(f"/sources/{source_id(demo_portal)}", json={
        "fields": {"settings": {"token": "t-3", "host": "mine.test"}}, "ifVersion": loaded["version"]})
    assert response.status_code == 409
    text = response.get_data(as_text=True)
    assert "t-2" not in text and "t-3" not in text and SECRET not in text
    fields = {item["field"]: item for item in response.get_json()["conflict"]["fields"]}
    assert fields["settings.token"] == {"field": "settings.token", "yours": "***", "theirs": "***"}
    assert fields["settings.host"]["theirs"] == "theirs.test"


def test_a_changed_secret_alone_is_no_conflict(admin, demo_portal):
    """Versions leave secret values out (they must not confirm guesses), so a secret changed by
    someone else meanwhile does not stop a save: the last write wins, as for a password field."""
    loaded = result(admin.get(f"/sources/{source_id(demo_portal)}"))
    result(admin.post(f"/sources/{source_id(demo_portal)}", json={"fields": {"settings": {"token": "t-2"}}}))
    assert result(admin.get(f"/sources/{source_id(demo_portal)}"))["version"] == loaded["version"]


@pytest.mark.parametrize("version", [17, "", "x" * 65, ["v"]])
def test_a_malformed_version_is_refused(admin, demo_portal, version):
    response = admin.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {"title": "X"}, "ifVersion": version})
    assert (response.status_code, response.get_json()["error"]) == (400, "INVALID_VERSION")
    assert demo_portal.connectors[connector_id(demo_portal)]["title"] == "Demo warehouse"


def test_history_lists_changes_newest_first_with_secrets_masked(admin, bitrix, demo_portal):
    path = f"/sources/{source_id(demo_portal)}"
    result(admin.post(path, json={"fields": {"title": "Main (renamed)"}}))
    result(admin.post(path, json={"fields": {"settings": {"host": "wh9.demo.test", "token": "new-secret-value"}}}))
    first, second = result(admin.get(path + "/history"))
    assert first["changes"] == [
        {"field": "settings.host", "old": "wh1.demo.test", "new": "wh9.demo.test", "secret": False},
        {"field": "settings.token", "old": "***", "new": "***", "secret": True},
    ]
    assert second["changes"] == [{"field": "title", "old": "Main warehouse", "new": "Main (renamed)", "secret": False}]
    assert first["actor"]["name"] == "Anna Admin" and first["via"] == "tab" and first["id"] > second["id"]
    assert "new-secret-value" not in stored_history(bitrix) and SECRET not in stored_history(bitrix)
    assert result(admin.get(f"/sources/{source_id(demo_portal, 1)}/history")) == []


def test_a_change_is_reverted_through_the_same_checks(admin, demo_portal):
    path = f"/connectors/{connector_id(demo_portal)}"
    result(admin.post(path, json={"fields": {"title": "Renamed", "description": "New text"}}))
    [change] = result(admin.get(path + "/history"))
    assert change["revertible"]
    stale = result(admin.get(path))["version"]
    result(admin.post(path, json={"fields": {"sort": 300}}))
    conflict = admin.post(f"/history/{change['id']}/revert", json={"ifVersion": stale})
    assert conflict.status_code == 409 and conflict.get_json()["error"] == "EDIT_CONFLICT"
    reverted = result(admin.post(f"/history/{change['id']}/revert", json={}))
    assert (reverted["title"], reverted["description"], reverted["sort"]) == (
        "Demo warehouse", "Sample connector served by the sandbox portal.", 300)
    newest = result(admin.get(path + "/history"))[0]
    assert newest["action"] == "revert" and newest["reverts"] == change["id"]


def test_values_recorded_before_a_setting_became_secret_are_hidden_and_not_reverted(admin, open_tab, bitrix,
                                                                                   demo_portal):
    path = f"/sources/{source_id(demo_portal)}"
    result(admin.post(path, json={"fields": {"settings": {"host": "private-db.internal"}}}))
    connector = f"/connectors/{connector_id(demo_portal)}"
    result(admin.post(connector, json={"fields": {"secretSettings": ["host", "token"]}}))

    reader = open_tab(demo_portal, demo_portal.add_user("Olga Reader"))
    [change] = result(reader.get(path + "/history"))
    assert change["changes"] == [{"field": "settings.host", "old": "***", "new": "***", "secret": True}]
    assert not change["revertible"]
    assert "private-db.internal" not in stored_history(bitrix)  # masked in the database too
    response = admin.post(f"/history/{change['id']}/revert")
    assert (response.status_code, response.get_json()["error"]) == (400, "NOT_REVERTIBLE")


def test_a_change_of_secrets_only_is_not_revertible(admin, demo_portal):
    path = f"/sources/{source_id(demo_portal)}"
    result(admin.post(path, json={"fields": {"settings": {"token": "rotated"}}}))
    [change] = result(admin.get(path + "/history"))
    assert not change["revertible"]
    response = admin.post(f"/history/{change['id']}/revert")
    assert (response.status_code, response.get_json()["error"]) == (400, "NOT_REVERTIBLE")


def test_a_reader_can_read_history_but_not_revert(admin, open_tab, demo_portal):
    path = f"/connectors/{connector_id(demo_portal)}"
    result(admin.post(path, json={"fields": {"title": "Renamed"}}))
    reader = open_tab(demo_portal, demo_portal.add_user("Olga Reader"))
    [change] = result(reader.get(path + "/history"))
    response = reader.post(f"/history/{change['id']}/revert")
    assert (response.status_code, response.get_json()["error"]) == (403, "READ_ONLY")
    assert demo_portal.connectors[connector_id(demo_portal)]["title"] == "Renamed"


def test_another_portals_change_cannot_be_seen_or_reverted(admin, open_tab, fake, demo_portal):
    result(admin.post(f"/connectors/{connector_id(demo_portal)}", json={"fields": {"title": "Alpha's"}}))
    [change] = result(admin.get(f"/connectors/{connector_id(demo_portal)}/history"))
    beta = fake.add_portal(domain="beta.bitrix24.test")
    fake.install(beta)
    fake.finish_install(beta)
    beta_demo = fake.seed_demo(beta)
    other = open_tab(beta)
    assert result(other.get(f"/connectors/{connector_id(demo_portal)}/history")) == []
    response = other.post(f"/history/{change['id']}/revert")
    assert (response.status_code, response.get_json()["error"]) == (404, "CHANGE_NOT_FOUND")
    assert beta.connectors[beta_demo["connector_id"]]["title"] == "Demo warehouse"
    response = admin.post("/history/abc/revert")
    assert (response.status_code, response.get_json()["error"]) == (400, "VALIDATION_INVALID_ID_FORMAT")


# --- who can edit: user.search, user.get ---------------------------------------------------------------

def test_editors_are_picked_by_name_and_unknown_ids_are_refused(admin, bitrix, demo_portal):
    ivan = demo_portal.add_user("Ivan Petrov")
    demo_portal.add_user("Olga Sidorova")
    assert result(admin.get("/users?search=iva")) == [{"id": ivan.id, "name": "Ivan Petrov"}]
    assert {user["name"] for user in result(admin.get("/users?search="))} >= {"Anna Admin", "Olga Sidorova"}
    response = admin.put("/editors", json={"userIds": [ivan.id, 404]})
    assert (response.status_code, response.get_json()["error"]) == (400, "UNKNOWN_USERS")
    assert "404" in response.get_json()["error_description"]
    assert result(admin.get("/editors"))["userIds"] == []  # nothing changed
    assert result(admin.put("/editors", json={"userIds": [ivan.id]}))["users"] == [{"id": ivan.id, "name": "Ivan Petrov"}]
    with bitrix.session_factory() as db:
        cached = {row.user_id: row.name for row in db.scalars(select(PortalUserName))}
    assert cached[ivan.id] == "Ivan Petrov"


def test_only_administrators_search_users(open_tab, demo_portal):
    reader = open_tab(demo_portal, demo_portal.add_user("Olga Reader"))
    response = reader.get("/users?search=a")
    assert (response.status_code, response.get_json()["error"]) == (403, "ADMIN_ONLY")


def test_an_overlong_search_is_refused(admin):
    response = admin.get("/users?search=" + "a" * 101)
    assert (response.status_code, response.get_json()["error"]) == (400, "INVALID_SEARCH")


# --- the CLI --------------------------------------------------------------------------------------

def invoke(runner, *args, env=None):
    return runner.invoke(args=[str(arg) for arg in args], env=env)


def test_cli_updates_check_the_version_and_are_recorded_with_the_operator(runner, open_tab, demo_portal):
    portal = ("--portal", demo_portal.domain)
    env = {"BITRIX_OPERATOR": "ops-anna"}
    got = json.loads(invoke(runner, "connectors", "get", connector_id(demo_portal), *portal, "--json").output)
    outcome = invoke(runner, "connectors", "update", connector_id(demo_portal), '{"title": "CLI title"}', *portal,
                     "--if-unchanged", got["version"], env=env)
    assert outcome.exit_code == 0, outcome.output
    stale = invoke(runner, "connectors", "update", connector_id(demo_portal), '{"title": "Again"}', *portal,
                   "--if-unchanged", got["version"], env=env)
    assert stale.exit_code == 1
    assert "changed this" in stale.output and "last changed" in stale.output and "ops-anna (cli)" in stale.output
    assert demo_portal.connectors[connector_id(demo_portal)]["title"] == "CLI title"
    listed = invoke(runner, "connectors", "list", *portal)
    assert "LAST CHANGE" in listed.output and "ops-anna (cli)" in listed.output
    history = invoke(runner, "connectors", "history", connector_id(demo_portal), *portal)
    assert "title: Demo warehouse -> CLI title" in history.output


def test_cli_source_history_and_revert(runner, demo_portal):
    portal = ("--portal", demo_portal.domain)
    invoke(runner, "sources", "update", source_id(demo_portal),
           '{"settings": {"host": "cli.demo.test", "token": "cli-secret"}}', *portal, env={"USER": "deploy"})
    history = invoke(runner, "sources", "history", source_id(demo_portal), *portal, "--json")
    [change] = json.loads(history.output)
    assert change["actor"] == {"kind": "cli", "id": None, "name": "deploy"} and change["via"] == "cli"
    assert "cli-secret" not in history.output
    wrong = invoke(runner, "connectors", "revert", change["id"], *portal)
    assert wrong.exit_code == 1 and "sources revert" in wrong.output
    reverted = invoke(runner, "sources", "revert", change["id"], *portal)
    assert reverted.exit_code == 0, reverted.output
    assert {row["code"]: row["value"] for row in demo_portal.sources[source_id(demo_portal)]["settings"]}["host"] == \
        "wh1.demo.test"
    listed = invoke(runner, "sources", "list", *portal)
    assert "(cli)" in listed.output


# --- plans ----------------------------------------------------------------------------------------

def test_plans_record_their_changes(bitrix, demo_portal, monkeypatch):
    monkeypatch.setenv("BITRIX_OPERATOR", "plan-bot")
    plan = parse_plan({"sources": [{"match": {"id": source_id(demo_portal)},
                                    "fields": {"description": "${PLAN_DESC}", "settings": {"token": "plan-secret"}}}]},
                      {"PLAN_DESC": "from the environment"})
    [report] = PlanRunner(bitrix, plan, sleep=lambda s: None).run([demo_portal.member_id])
    assert report.status == "changed", report.to_dict()
    [record] = History(bitrix.session_factory, demo_portal.member_id).entries("source", source_id(demo_portal))
    assert record["actor"] == {"kind": "plan", "id": None, "name": "plan-bot"} and record["via"] == "plan"
    assert {"field": "description", "old": None, "new": "***", "secret": False} in record["changes"]
    assert {"field": "settings.token", "old": "***", "new": "***", "secret": True} in record["changes"]
    assert "plan-secret" not in stored_history(bitrix) and "from the environment" not in stored_history(bitrix)


def test_a_plan_records_the_changes_of_all_its_updates_in_one_insert(bitrix, demo_portal):
    inserts = []
    engine = bitrix.session_factory.kw["bind"]

    def seen(_connection, _cursor, statement, *_):
        if "INSERT INTO change_history" in statement:
            inserts.append(statement)
    event.listen(engine, "before_cursor_execute", seen)
    plan = parse_plan({"connectors": [{"match": {"id": connector_id(demo_portal)}, "fields": {"description": "bulk"}}],
                       "sources": [{"match": {"id": source_id(demo_portal, n)}, "fields": {"description": "bulk"}}
                                   for n in (0, 1)]}, {})
    try:
        [report] = PlanRunner(bitrix, plan, sleep=lambda s: None).run([demo_portal.member_id])
    finally:
        event.remove(engine, "before_cursor_execute", seen)

    assert report.status == "changed", report.to_dict()
    assert len(inserts) == 1
    history = History(bitrix.session_factory, demo_portal.member_id)
    assert [len(history.entries("source", source_id(demo_portal, n))) for n in (0, 1)] == [1, 1]
    [connector_record] = history.entries("connector", connector_id(demo_portal))
    assert connector_record["changes"][0]["field"] == "description" and connector_record["via"] == "plan"


def test_a_plan_masks_in_the_history_what_an_administrator_marked_secret(bitrix, demo_portal):
    connector = connector_id(demo_portal)
    declared = [row["code"] for row in demo_portal.connectors[connector]["settings"]]
    SecretSettings(bitrix.session_factory, demo_portal.member_id).set_codes(connector, ["host"], declared)
    plan = parse_plan({"sources": [{"match": {"id": source_id(demo_portal)},
                                    "fields": {"settings": {"host": "hidden.example.com"}}}]}, {})

    [report] = PlanRunner(bitrix, plan, sleep=lambda s: None).run([demo_portal.member_id])

    assert report.status == "changed", report.to_dict()
    [record] = History(bitrix.session_factory, demo_portal.member_id).entries("source", source_id(demo_portal))
    assert {"field": "settings.host", "old": "***", "new": "***", "secret": True} in record["changes"]
    assert "hidden.example.com" not in stored_history(bitrix)


def test_a_plan_with_if_unchanged_skips_what_changed_after_its_diff(bitrix, demo_portal, monkeypatch):
    plan = parse_plan({"connectors": [{"match": {"id": connector_id(demo_portal)}, "fields": {"description": "plan"}}],
                       "sources": [{"match": {"id": source_id(demo_portal)}, "fields": {"description": "plan"}}]}, {})
    runner = PlanRunner(bitrix, plan, sleep=lambda s: None, if_unchanged=True)
    read_and_compare = runner._read_and_compare

    def someone_edits_after_the_diff(client, *ride):
        changes = read_and_compare(client, *ride)
        demo_portal.connectors[connector_id(demo_portal)]["title"] = "Edited meanwhile"
        return changes

    monkeypatch.setattr(runner, "_read_and_compare", someone_edits_after_the_diff)
    [report] = runner.run([demo_portal.member_id])
    by_kind = {update.kind: update for update in report.updates}
    assert by_kind["connector"].error_code == "EDIT_CONFLICT" and not by_kind["connector"].applied
    assert "changed since the plan read it" in by_kind["connector"].error
    assert by_kind["source"].applied
    assert demo_portal.connectors[connector_id(demo_portal)]["description"] != "plan"
    assert report.status == "failed"
