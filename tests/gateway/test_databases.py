"""Database entries through /api/databases: add (test, store, source.add), edit, rotate, check,
delete; what Bitrix24 gets to hold; refusals that change nothing."""
from __future__ import annotations

import json
import socket
import threading
import time

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
                                                    sample_databases):
    monkeypatch.setenv("PLAN_DB_PASSWORD", "")
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
