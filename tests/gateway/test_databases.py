"""Database entries through /api/databases: add (test, store, source.add), edit, rotate, check,
delete; what Bitrix24 gets to hold; refusals that change nothing."""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from sqlalchemy import func, select

from bitrix_app.models import Database
from tests.gateway.conftest import Endpoints, table_id


def count_databases(app) -> int:
    with app.extensions["bitrix"].session_factory() as session:
        return session.scalar(select(func.count()).select_from(Database))


def test_adding_creates_a_source_that_holds_only_a_key_and_a_secret(added, installed_portal, fake, kind,
                                                                    sample_databases):
    result, source = added
    assert result["connectorId"] == source["connectorId"]
    assert sorted(item["code"] for item in source["settings"]) == ["secret", "source_key"]
    stored = repr(installed_portal.sources) + repr(installed_portal.connectors) + repr(fake.requests_log)
    assert sample_databases[kind]["database"] not in stored
    checks = [call for call in fake.outbound_calls if call["kind"] == "url_check"]
    assert checks and checks[-1]["ok"] is True


def test_the_password_is_never_returned(admin, sample_databases, app):
    fields = dict(sample_databases["mysql"], title="With password", password="s3cret-pass-word")
    fields["user"] = "root"
    response = admin.post("/databases", json=fields)
    # MariaDB's root has no password here, so the login fails: still nothing may echo it.
    assert "s3cret-pass-word" not in response.get_data(as_text=True)
    listed = admin.get("/databases").get_data(as_text=True)
    assert "s3cret-pass-word" not in listed


def test_list_and_get_show_everything_but_the_password(admin, added, kind):
    result, _source = added
    [item] = admin.get("/databases").get_json()["result"]
    assert item["id"] == result["id"] and item["kind"] == kind and "password" not in item
    assert admin.get(f"/databases/{result['id']}").get_json()["result"]["sourceId"] == result["sourceId"]


def test_invalid_fields_are_named_and_nothing_is_stored(admin, app, installed_portal):
    response = admin.post("/databases", json={"kind": "postgresql", "title": "", "host": "db.example.test",
                                              "port": "99999", "database": "x", "user": "u",
                                              "savedQueries": [{"title": "Bad", "sql": "DELETE FROM orders"}]})
    assert response.status_code == 400
    fields = {item["field"] for item in response.get_json()["fields"]}
    assert fields == {"title", "port", "savedQueries[0].sql"}
    assert admin.post("/databases", json={"kind": "oracle", "title": "x"}).status_code == 400
    assert count_databases(app) == 0 and not installed_portal.sources


def test_a_failed_login_is_explained_and_stores_nothing(admin, sample_databases, app, installed_portal):
    fields = dict(sample_databases["mysql"], title="Wrong user", user="no_such_user_here")
    response = admin.post("/databases", json=fields)
    assert response.status_code == 422
    assert response.get_json()["error"] == "AUTH_FAILED"
    missing = dict(sample_databases["postgresql"], title="Missing", database="no_such_database_here")
    assert admin.post("/databases", json=missing).get_json()["error"] == "DATABASE_NOT_FOUND"
    assert count_databases(app) == 0 and not installed_portal.sources


def test_a_down_database_fails_fast(admin, sample_databases):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    started = time.monotonic()
    response = admin.post("/databases", json=dict(sample_databases["postgresql"], title="Down", port=closed_port))
    assert response.status_code == 422 and response.get_json()["error"] == "HOST_UNREACHABLE"
    assert time.monotonic() - started < 5


def test_a_host_outside_the_allowed_networks_is_never_contacted(admin, sample_databases):
    accepted = []
    listener = socket.socket()
    listener.bind(("127.0.0.2", 0))  # loopback, but outside GATEWAY_ALLOWED_NETWORKS=127.0.0.1/32
    listener.listen()
    listener.settimeout(0.2)

    def accept():
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                accepted.append(listener.accept())
            except OSError:
                pass

    thread = threading.Thread(target=accept)
    thread.start()
    fields = dict(sample_databases["postgresql"], title="Elsewhere", host="127.0.0.2",
                  port=listener.getsockname()[1])
    response = admin.post("/databases", json=fields)
    thread.join()
    listener.close()
    assert response.status_code == 422
    assert response.get_json()["error"] == "ADDRESS_NOT_ALLOWED"
    assert "GATEWAY_ALLOWED_NETWORKS" in response.get_json()["error_description"]
    assert accepted == []


def test_renaming_goes_to_the_source(admin, added, installed_portal):
    result, source = added
    response = admin.patch(f"/databases/{result['id']}", json={"title": "Orders, renamed"})
    assert response.status_code == 200 and response.get_json()["result"]["changed"] == ["title"]
    assert source["title"] == "Orders, renamed"
    assert admin.patch(f"/databases/{result['id']}", json={"title": "Orders, renamed"}).get_json()["result"][
        "changed"] == []


def test_rotating_the_secret_replaces_it_everywhere(admin, added, endpoints):
    result, source = added
    old_settings = dict(endpoints.settings)
    response = admin.patch(f"/databases/{result['id']}", json={"rotateSecret": True})
    assert response.get_json()["result"]["changed"] == ["secret"]
    new_settings = {item["code"]: item["value"] for item in source["settings"]}
    assert new_settings["secret"] != old_settings["secret"]
    assert Endpoints(endpoints.connector, new_settings).post("check").status_code == 200
    assert Endpoints(endpoints.connector, old_settings).post("check").status_code == 401


def test_a_saved_query_is_a_table(admin, added, endpoints):
    result, _source = added
    sql = "SELECT id, amount * 2 AS doubled FROM orders WHERE amount > 100"
    response = admin.patch(f"/databases/{result['id']}", json={"savedQueries": [{"title": "Big orders", "sql": sql}]})
    assert response.status_code == 200, response.get_json()
    entries = endpoints.post("tables", {"searchString": "big"}).json()
    assert [entry["title"] for entry in entries] == ["Big orders"]
    rows = endpoints.data(entries[0]["id"], filter={">=ID": "2"})
    assert rows[0] == ["ID", "DOUBLED"] and [row[0] for row in rows[1:]] == [2]
    assert float(rows[1][1]) == 620.0


def test_check_reports_what_bitrix24_would_see(admin, added):
    result, _source = added
    check = admin.post(f"/databases/{result['id']}/check").get_json()["result"]
    assert check == {"ok": True, "tables": 2}


def test_delete_removes_the_source_unless_datasets_use_it(admin, added, fake, installed_portal, app):
    result, _source = added
    table = fake.seed_table(installed_portal, result["sourceId"])
    refused = admin.delete(f"/databases/{result['id']}")
    assert refused.status_code == 502 and refused.get_json()["error"] == "BX_ERROR"
    assert count_databases(app) == 1
    del installed_portal.tables[table]
    assert admin.delete(f"/databases/{result['id']}").status_code == 200
    assert result["sourceId"] not in installed_portal.sources and count_databases(app) == 0


def test_readers_cannot_change_and_other_portals_cannot_see(added, open_tab, installed_portal, fake):
    result, _source = added
    reader = open_tab(installed_portal, installed_portal.add_user(name="Olga Reader", admin=False))
    assert reader.post("/databases", json={"kind": "sqlite", "title": "x", "database": "orders.db"}).status_code == 403
    assert reader.delete(f"/databases/{result['id']}").status_code == 403
    other = fake.add_portal(domain="beta.bitrix24.test")
    assert fake.install(other).status_code == 200
    fake.finish_install(other)
    stranger = open_tab(other)
    assert stranger.get(f"/databases/{result['id']}").status_code == 404
    assert stranger.delete(f"/databases/{result['id']}").status_code == 404
    assert stranger.get("/databases").get_json()["result"] == []


def test_bi_builder_builds_a_table_and_queries_it(added, fake, installed_portal, endpoints):
    result, _source = added
    external_code = table_id(endpoints, "orders")
    table = fake.bi.create_table(installed_portal, result["sourceId"], external_code)
    assert installed_portal.tables[table]["name"] == f"db{result['id']}_orders"
    preview = fake.bi.preview(installed_portal, result["sourceId"], external_code)
    assert preview[0]["ID"] == 1 and len(preview) == 5
    answer = fake.bi.query(installed_portal, table, ["ID", "AMOUNT"], date_range=("2025-05-15", "2025-05-31"),
                           time_filter_column="CREATED_AT")
    assert answer.header == ["ID", "AMOUNT"] and [row[0] for row in answer.rows] == [2, 4]
    excluded = fake.bi.query(installed_portal, table, ["ID"], dimension_filters=[[
        {"fieldName": "CUSTOMER_NAME", "values": ["Northwind", "Contoso"], "type": "EXCLUDE", "operator": "IN_LIST"}]])
    assert [row[0] for row in excluded.rows] == [3, 4, 5]


def test_a_plan_adds_a_database_then_changes_nothing(runner, tmp_path, installed_portal, app, monkeypatch,
                                                    sample_databases, admin):
    monkeypatch.setenv("PLAN_DB_PASSWORD", "")
    monkeypatch.setenv("BITRIX_OPERATOR", "plan-bot")
    pg = sample_databases["postgresql"]
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""
portals: all
databases:
  - match: {{title: Warehouse}}
    fields: {{kind: postgresql, host: "{pg['host']}", port: {pg['port']}, database: {pg['database']},
              user: {pg['user']}, password: "${{PLAN_DB_PASSWORD}}", tlsMode: disable, tables: [orders]}}
""")
    dry = runner.invoke(args=["plan", "apply", str(plan), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "~ database #0 \"Warehouse\"" in dry.output and "tables: - -> orders" in dry.output
    assert count_databases(app) == 0
    first = runner.invoke(args=["plan", "apply", str(plan), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["summary"]["changed"] == 1
    assert count_databases(app) == 1 and len(installed_portal.sources) == 1
    second = runner.invoke(args=["plan", "apply", str(plan), "--json"])
    assert json.loads(second.output)["summary"] == {"changed": 0, "unchanged": 1, "failed": 0}
    plan.write_text(plan.read_text().replace("tables: [orders]", "tables: [orders, paid_orders]"))
    third = runner.invoke(args=["plan", "apply", str(plan)])
    assert "tables: orders -> orders, paid_orders" in third.output
    [source_id] = installed_portal.sources
    entries = history_of(admin, source_id)
    assert [(entry["action"], entry["actor"]["name"], entry["via"]) for entry in entries] == [
        ("update", "plan-bot", "plan"), ("create", "plan-bot", "plan")]
    assert entries[0]["changes"][0] == {"field": "database.tables", "old": "orders", "new": "orders, paid_orders",
                                        "secret": False}


def test_a_source_deleted_in_bitrix24_is_created_again_on_the_next_save(admin, added, installed_portal, app):
    result, source = added
    del installed_portal.sources[source["id"]]
    response = admin.patch(f"/databases/{result['id']}", json={"title": "Orders again"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["result"]["changed"] == ["title", "source"]
    item = response.get_json()["result"]["item"]
    assert item["sourceId"] != source["id"]
    recreated = installed_portal.sources[item["sourceId"]]
    assert recreated["title"] == "Orders again"
    settings = {entry["code"]: entry["value"] for entry in recreated["settings"]}
    connector = installed_portal.connectors[recreated["connectorId"]]
    assert Endpoints(connector, settings).post("check").status_code == 200


# --- change history and concurrent edits ---------------------------------------------------------

def history_of(admin, source_id: int) -> list[dict]:
    response = admin.get(f"/sources/{source_id}/history")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["result"]


@pytest.mark.parametrize("kind", ["postgresql"])
def test_every_write_is_in_the_sources_history_with_the_password_masked(admin, added, installed_portal):
    result, source = added
    [created] = history_of(admin, source["id"])
    assert created["action"] == "create" and created["via"] == "tab"
    assert created["actor"] == {"kind": "user", "id": 1, "name": "Anna Admin"}
    assert {"field": "database.title", "old": None, "new": "Orders (postgresql)", "secret": False} in created["changes"]

    response = admin.patch(f"/databases/{result['id']}", json={"title": "Renamed", "password": "n3w-pass-word",
                                                               "rotateSecret": True})
    assert response.status_code == 200, response.get_json()
    updated, _created = history_of(admin, source["id"])
    changes = {change["field"]: change for change in updated["changes"]}
    assert set(changes) == {"database.title", "database.password", "settings.secret"}
    assert (changes["database.title"]["old"], changes["database.title"]["new"]) == ("Orders (postgresql)", "Renamed")
    assert changes["database.password"] == {"field": "database.password", "old": None, "new": "***", "secret": True}
    assert not updated["revertible"]  # the entry holds these values, not the source
    assert admin.post(f"/history/{updated['id']}/revert", json={}).get_json()["error"] == "NOT_REVERTIBLE"
    stored = json.dumps(history_of(admin, source["id"]))
    assert "n3w-pass-word" not in stored and source["settings"][0]["value"] not in stored

    item = response.get_json()["result"]["item"]
    assert item["lastChange"]["via"] == "tab" and item["lastChange"]["actor"]["name"] == "Anna Admin"
    assert admin.delete(f"/databases/{result['id']}").status_code == 200
    assert [entry["action"] for entry in history_of(admin, source["id"])] == ["delete", "update", "create"]


@pytest.mark.parametrize("kind", ["sqlite"])
def test_an_edit_from_an_older_version_is_a_conflict_and_changes_nothing(admin, added, installed_portal):
    result, source = added
    loaded = admin.get(f"/databases/{result['id']}").get_json()["result"]
    first = admin.patch(f"/databases/{result['id']}", json={"title": "Theirs", "ifVersion": loaded["version"]})
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["result"]["item"]["version"] != loaded["version"]

    late = admin.patch(f"/databases/{result['id']}", json={"title": "Mine", "ifVersion": loaded["version"]})

    assert late.status_code == 409 and late.get_json()["error"] == "EDIT_CONFLICT"
    conflict = late.get_json()["conflict"]
    assert conflict["fields"] == [{"field": "title", "yours": "Mine", "theirs": "Theirs"}]
    assert conflict["lastChange"]["actor"]["name"] == "Anna Admin" and conflict["current"]["title"] == "Theirs"
    assert source["title"] == "Theirs" and len(history_of(admin, source["id"])) == 2
    bad = admin.patch(f"/databases/{result['id']}", json={"title": "Mine", "ifVersion": ["1"]})
    assert bad.status_code == 400 and bad.get_json()["error"] == "INVALID_VERSION"
    again = admin.patch(f"/databases/{result['id']}",
                        json={"title": "Mine", "ifVersion": conflict["current"]["version"]})
    assert again.status_code == 200 and source["title"] == "Mine"


@pytest.mark.parametrize("kind", ["sqlite"])
def test_the_api_flags_the_gateways_own_connectors_and_sources(admin, added, open_tab, fake, installed_portal):
    result, source = added
    custom = fake.seed_demo(installed_portal)
    connectors = {item["id"]: item for item in admin.get("/connectors").get_json()["result"]}
    assert connectors[source["connectorId"]]["gateway"] is True
    assert connectors[custom["connector_id"]]["gateway"] is False
    sources = {item["id"]: item for item in admin.get("/sources").get_json()["result"]}
    assert sources[source["id"]]["gateway"] is True
    assert [item["gateway"] for item in sources.values() if item["id"] != source["id"]] == [False, False]
    assert admin.get(f"/sources/{source['id']}").get_json()["result"]["gateway"] is True
    assert admin.delete(f"/sources/{source['id']}").get_json()["error"] == "GATEWAY_SOURCE"  # still refused


def test_a_plan_with_if_unchanged_skips_a_database_changed_meanwhile(runner, tmp_path, admin, sample_databases,
                                                                      monkeypatch):
    from bitrix_app.gateway.databases import DatabaseService

    added = admin.post("/databases", json={"title": "Warehouse", **sample_databases["sqlite"]})
    assert added.status_code == 201, added.get_json()
    database_id = added.get_json()["result"]["id"]
    diff_only = DatabaseService.changes
    meanwhile = []

    def another_admin_saves_after_the_diff(self, raw_id, fields):
        outcome = diff_only(self, raw_id, fields)
        if not meanwhile:  # once: the other admin's own save runs through here too
            meanwhile.append(None)
            meanwhile[0] = admin.patch(f"/databases/{raw_id}", json={"description": "Someone else"})
        return outcome

    monkeypatch.setattr(DatabaseService, "changes", another_admin_saves_after_the_diff)
    plan = tmp_path / "plan.yaml"
    plan.write_text("databases:\n  - match: {title: Warehouse}\n    fields: {description: From the plan}\n")

    result = runner.invoke(args=["plan", "apply", str(plan), "--if-unchanged", "--json"])

    assert result.exit_code == 1, result.output
    assert meanwhile and meanwhile[0].status_code == 200, result.output
    [update] = json.loads(result.output)["portals"][0]["updates"]
    assert update["error_code"] == "EDIT_CONFLICT" and not update["applied"]
    assert admin.get(f"/databases/{database_id}").get_json()["result"]["description"] == "Someone else"
