"""The four connector endpoints over real HTTP, on PostgreSQL, MariaDB and SQLite."""
from __future__ import annotations

import json
import time
from dataclasses import replace as replace_fields

import pytest
import requests

from bitrix_app.models import Database

from tests.gateway.conftest import Endpoints, table_id

HEADER = ["ID", "CUSTOMER_NAME", "AMOUNT", "RATE", "PAID", "ORDERED_ON", "CREATED_AT", "SUMMA", "NOTE"]


def test_check_answers_200_with_a_body(endpoints):
    response = endpoints.post("check")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_table_list_has_tables_and_views_with_bi_safe_codes(endpoints, added):
    result, _source = added
    entries = endpoints.post("tables", {"searchString": ""}).json()
    by_title = {entry["title"]: entry for entry in entries}
    assert set(by_title) == {"orders", "paid_orders"}
    assert by_title["orders"]["code"] == f"db{result['id']}_orders"
    assert all(entry["code"] and entry["title"] and entry["id"] for entry in entries)


def test_table_list_filters_by_search_string(endpoints):
    assert [entry["title"] for entry in endpoints.post("tables", {"searchString": "PAID"}).json()] == ["paid_orders"]


def test_description_maps_names_and_types(endpoints):
    columns = endpoints.post("describe", {"table": table_id(endpoints, "orders")}).json()
    assert [(column["code"], column["type"]) for column in columns] == [
        ("ID", "int"), ("CUSTOMER_NAME", "string"), ("AMOUNT", "double"), ("RATE", "double"), ("PAID", "int"),
        ("ORDERED_ON", "date"), ("CREATED_AT", "datetime"), ("SUMMA", "double"), ("NOTE", "string")]
    assert columns[1]["name"] == "Customer Name"


def test_data_without_select_returns_every_column_formatted(endpoints):
    rows = endpoints.data(table_id(endpoints, "orders"))
    assert rows[0] == HEADER
    assert rows[1] == [1, "Northwind", 1250.5, 0.5, 1, "2025-05-01", "2025-05-01 00:00:00", 1, "first"]
    assert rows[3] == [3, None, None, None, None, None, None, None, "no data"]
    assert rows[4][-1] == 'quote " and \\ back'
    assert rows[5][1] == "O'Brien & Sons" and rows[5][-1] == "Иван"
    assert len(rows) == 6


def test_data_follows_select_order_and_limit(endpoints):
    rows = endpoints.data(table_id(endpoints, "orders"), select=["AMOUNT", "ID"], limit="2")
    assert rows == [["AMOUNT", "ID"], [1250.5, 1], [310, 2]]


def test_data_follows_map_fields_for_renamed_columns(endpoints):
    rows = endpoints.data(table_id(endpoints, "orders"), select=["MONEY", "ID"], limit="1",
                          mapFields={"AMOUNT": "MONEY", "ID": "ID"},
                          filter={">=MONEY": "300"})
    assert rows == [["MONEY", "ID"], [1250.5, 1]]


def test_data_applies_bitrix_filters(endpoints):
    table = table_id(endpoints, "orders")
    cases = [
        ({">=CREATED_AT": "15.05.2025 00:00:00", "<=CREATED_AT": "31.05.2025 23:59:59"}, [2, 4]),
        ({"0": {"LOGIC": "OR", "0": {"=CUSTOMER_NAME": ["contoso"]}, "1": {"=CUSTOMER_NAME": ["Fabrikam"]}}}, [2, 4]),
        ({"!=CUSTOMER_NAME": ["Northwind"]}, [2, 3, 4, 5]),
        ({"%CUSTOMER_NAME": ["wind"]}, [1]),
        ({"=CUSTOMER_NAME": "0"}, [3]),
        ({"><AMOUNT": ["70", "400"]}, [2, 4]),
        ({"!<AMOUNT": ["300"]}, [1, 2]),
        ({"@ID": ["1", "5"]}, [1, 5]),
        ({"=ORDERED_ON": ["31.05.2025"]}, [4]),
        ({"<=ORDERED_ON": "05/15/2025"}, [1, 2]),
    ]
    for filter_, expected in cases:
        rows = endpoints.data(table, select=["ID"], filter=filter_)
        assert [row[0] for row in rows[1:]] == expected, filter_


def test_data_serves_views(endpoints):
    rows = endpoints.data(table_id(endpoints, "paid_orders"))
    assert rows == [["ID", "AMOUNT"], [1, 1250.5], [4, 78.25]]


@pytest.mark.parametrize("filter_, code", [
    ({"=NO_SUCH_COLUMN": "1"}, "FILTER_UNKNOWN_COLUMN"),
    ({"=ID; DROP TABLE orders": "1"}, "FILTER_UNKNOWN_COLUMN"),
    ({">=ID": "one"}, "FILTER_BAD_VALUE"),
    ({">=CREATED_AT": "yesterday"}, "FILTER_BAD_VALUE"),
])
def test_filters_it_cannot_translate_are_refused(endpoints, filter_, code):
    response = endpoints.post("data", {"table": table_id(endpoints, "orders"), "filter": filter_})
    assert response.status_code == 400
    assert response.json()["error"] == code


def test_injection_in_values_is_just_a_value(endpoints):
    rows = endpoints.data(table_id(endpoints, "orders"), select=["ID"],
                          filter={"=CUSTOMER_NAME": ["x' OR '1'='1"]})
    assert rows == [["ID"]]


def test_unknown_tables_and_columns_are_refused(endpoints):
    assert endpoints.post("data", {"table": "orders; DROP TABLE orders"}).status_code == 404
    assert endpoints.post("describe", {"table": "db999:public.orders"}).status_code == 404
    response = endpoints.post("data", {"table": table_id(endpoints, "orders"), "select": ["ID", 'x"; --']})
    assert response.status_code == 400 and response.json()["error"] == "UNKNOWN_COLUMN"
    assert endpoints.post("data", {"table": table_id(endpoints, "orders"), "limit": "ten"}).status_code == 400


def test_a_wrong_secret_is_refused_before_any_database_work(endpoints):
    settings = dict(endpoints.settings, secret="wrong")
    for name in ("check", "tables", "describe", "data"):
        response = endpoints.post(name, {"table": "x"}, connection=settings)
        assert response.status_code == 401
        assert response.json()["error"] == "INVALID_SOURCE_CREDENTIALS"
    assert endpoints.post("check", connection={}).status_code == 401


def test_another_portals_key_does_not_open_this_source(endpoints, fake, open_tab):
    other = fake.add_portal(domain="beta.bitrix24.test")
    assert fake.install(other).status_code == 200
    fake.finish_install(other)
    other_connector = next(iter(other.connectors.values()))
    response = Endpoints(other_connector, endpoints.settings).post("check")
    assert response.status_code == 401


def test_uninstalled_portals_sources_stop_answering(endpoints, fake, installed_portal):
    assert fake.uninstall(installed_portal).status_code == 200
    response = endpoints.post("check")
    assert response.status_code == 403
    assert response.json()["error"] == "PORTAL_UNINSTALLED"


def test_get_and_unknown_endpoints_never_redirect(endpoints):
    url = endpoints.connector["urlCheck"]
    assert requests.get(url, timeout=10, allow_redirects=False).status_code == 405
    assert requests.post(url.replace("/check", "/check/"), timeout=10, allow_redirects=False).status_code == 401
    assert requests.post(url.replace("/check", "/nope"), timeout=10, allow_redirects=False).status_code == 404


def test_a_failure_mid_stream_never_looks_like_a_complete_answer(admin, sample_databases, fake, installed_portal):
    sql = "SELECT n AS id, 1 / (n - 4500) AS ratio FROM generate_series(1, 6000) AS n"
    response = admin.post("/databases", json={**sample_databases["postgresql"], "title": "Fails late",
                                              "savedQueries": [{"title": "Late failure", "sql": sql}]})
    assert response.status_code == 201, response.get_json()
    source = installed_portal.sources[response.get_json()["result"]["sourceId"]]
    endpoints = Endpoints(installed_portal.connectors[source["connectorId"]],
                          {item["code"]: item["value"] for item in source["settings"]})
    table = endpoints.post("tables", {"searchString": "late"}).json()[0]["id"]
    body = b""
    try:
        with endpoints.post("data", {"table": table}, stream=True) as answer:
            assert answer.status_code == 200  # the first rows were already on their way
            for chunk in answer.iter_content(65536):
                body += chunk
    except requests.exceptions.RequestException:
        pass  # the connection was dropped: the client can tell
    assert body.startswith(b'[["ID", "RATIO"],[1') and b"[4000," in body
    with pytest.raises(ValueError):
        json.loads(body)


def test_a_database_that_went_down_answers_quickly_with_an_error(endpoints, added, app):
    result, _source = added
    gateway = app.extensions["gateway"]
    with app.extensions["bitrix"].session_factory() as session, session.begin():
        row = session.get(Database, result["id"])
        connection = gateway.connection_of(row)
        if connection.host:  # network kinds: point at a closed port; SQLite: at a missing file
            row.connection_encrypted = gateway.seal(replace_fields(connection, port=1))
        else:
            row.connection_encrypted = gateway.seal(replace_fields(connection, database="gone.db"))
        row.version += 1
    started = time.monotonic()
    response = endpoints.post("check")
    assert response.status_code == 502
    assert response.json()["error"] in ("HOST_UNREACHABLE", "SQLITE_FILE_MISSING")
    assert time.monotonic() - started < 5


def test_wide_tables_keep_every_column_in_order(admin, added, endpoints):
    result, _source = added
    sql = "SELECT " + ", ".join(f"{number} AS c{number}" for number in range(1, 111))
    response = admin.patch(f"/databases/{result['id']}", json={"savedQueries": [{"title": "Wide", "sql": sql}]})
    assert response.status_code == 200, response.get_json()
    table = endpoints.post("tables", {"searchString": "wide"}).json()[0]["id"]
    rows = endpoints.data(table)
    assert rows == [[f"C{number}" for number in range(1, 111)], list(range(1, 111))]


def test_a_client_that_hangs_up_mid_stream_leaves_the_pool_healthy(admin, sample_databases, installed_portal):
    sql = "SELECT n AS id, repeat('x', 100) AS filler FROM generate_series(1, 300000) AS n"
    response = admin.post("/databases", json={**sample_databases["postgresql"], "title": "Big",
                                              "savedQueries": [{"title": "Many rows", "sql": sql}]})
    source = installed_portal.sources[response.get_json()["result"]["sourceId"]]
    endpoints = Endpoints(installed_portal.connectors[source["connectorId"]],
                          {item["code"]: item["value"] for item in source["settings"]})
    table = endpoints.post("tables", {"searchString": "many"}).json()[0]["id"]
    for _ in range(3):  # more than the pool holds, so a broken connection would be reused
        with endpoints.post("data", {"table": table}, stream=True) as answer:
            assert answer.status_code == 200
            next(answer.iter_content(4096))
    assert endpoints.data(table, limit="2", select=["ID"]) == [["ID"], [1], [2]]
