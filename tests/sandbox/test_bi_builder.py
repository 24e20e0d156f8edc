"""The fake as the Analytics hub and BI Builder: what it sends to a connector's endpoints, how it
judges the answers, the BI names it enforces, and the BI Builder page."""
from __future__ import annotations

import json

import pytest
import requests
from flask import Response, request

from bitrix_app.sandbox.fake import phpform
from bitrix_app.sandbox.fake.bi_builder import (
    CANT_CONNECT, EMPTY_TABLE_DESCRIPTION, EMPTY_TABLE_LIST, HTTP_ERROR, INVALID_ANSWER, INVALID_NAME, NAME_TAKEN,
    NOT_ACTIVE, TABLE_DESCRIPTION_FAILED, BiBuilderError,
)

LIST, DESCRIPTION, DATA = "/bi/list", "/bi/describe", "/bi/data"
CONNECTION = {"connection[host]": "db.example", "connection[port]": "5432"}
TABLES = [{"id": "sales.orders", "code": "orders", "title": "Orders"}]
COLUMNS = [
    {"code": "ORDER_ID", "name": "Order", "type": "INT"},
    {"code": "CREATED", "name": "Created", "type": "DateTime"},
    {"code": "STATUS", "name": "Status", "type": "string"},
    {"code": "PAID_ON", "name": "Paid on", "type": "date"},
]
ROWS = [["ORDER_ID", "CREATED", "STATUS", "PAID_ON"], [1, "2025-05-01 10:00:00", "PAID", "2025-05-02"]]


def seed_receiver_connector(b24, portal, receiver, data_path: str = DATA) -> int:
    """A connector on the receiver (URLs with their own query string) and one source on it."""
    connector_id = b24.seed_connector(portal, {
        "title": "Receiver", "logo": "x",
        "urlCheck": f"{receiver.url}/bi/check?secret=s1",
        "urlTableList": f"{receiver.url}{LIST}?secret=s1&action=list",
        "urlTableDescription": f"{receiver.url}{DESCRIPTION}?secret=s1",
        "urlData": f"{receiver.url}{data_path}?secret=s1",
        "settings": [{"name": "Host", "code": "host", "type": "STRING"}, {"name": "Port", "code": "port", "type": "INT"}],
    })
    return b24.seed_source(portal, {"title": "Orders DB", "connectorId": connector_id,
                                    "settings": {"host": "db.example", "port": "5432"}})


@pytest.fixture
def source(b24, portal, receiver) -> int:
    receiver.answers.update({LIST: (200, json.dumps(TABLES)), DESCRIPTION: (200, json.dumps(COLUMNS)),
                             DATA: (200, json.dumps(ROWS))})
    return seed_receiver_connector(b24, portal, receiver)


@pytest.fixture
def table(b24, portal, source, receiver) -> int:
    table_id = b24.bi.create_table(portal, source, "sales.orders")
    receiver.requests.clear()
    b24.clear_outbound_calls()
    return table_id


def failure(call, *args, **kwargs) -> BiBuilderError:
    with pytest.raises(BiBuilderError) as caught:
        call(*args, **kwargs)
    return caught.value


# --- the request -------------------------------------------------------------------------------

def test_table_list_request_and_external_codes(b24, portal, source, receiver):
    receiver.answers[LIST] = (200, json.dumps([*TABLES, {"code": "refunds", "title": "Refunds", "extra": 1}]))
    receiver.hooks[LIST] = lambda entry: entry.update(headers=dict(request.headers))

    tables = b24.bi.table_list(portal, source)

    assert tables == [{"externalCode": "sales.orders", "code": "orders", "title": "Orders"},
                      {"externalCode": "refunds", "code": "refunds", "title": "Refunds"}]
    sent = receiver.to(LIST)[0]
    assert sent["args"] == {"secret": "s1", "action": "list"}
    assert sent["form"] == {"searchString": "", **CONNECTION}
    assert sent["content_type"] == "application/x-www-form-urlencoded"
    assert not {"User-Agent", "Authorization"} & set(sent["headers"])
    assert [(call["kind"], call["ok"], call["form"]) for call in b24.outbound_calls] == [
        ("table_list", True, {"searchString": "", **CONNECTION})]


def test_description_request_and_types(b24, portal, source, receiver):
    receiver.answers[DESCRIPTION] = (200, json.dumps([*COLUMNS, {"code": "FLAG", "name": "Flag", "type": "bool"},
                                                      {"code": "SUM", "name": "Sum", "type": "Money"}]))

    columns = b24.bi.describe(portal, source, "sales.orders")

    assert [column["type"] for column in columns] == ["int", "datetime", "string", "date", "string", "money"]
    assert receiver.to(DESCRIPTION)[0]["form"] == {"table": "sales.orders", **CONNECTION}
    assert b24.outbound_calls[-1]["kind"] == "table_description"


def test_preview_before_the_table_exists(b24, portal, source, receiver):
    receiver.answers[DATA] = (200, json.dumps([ROWS[0], *[[n, "2025-05-01", "NEW", None] for n in range(25)]]))

    rows = b24.bi.preview(portal, source, "sales.orders")

    assert receiver.to(DATA)[0]["form"] == {"table": "sales.orders", "limit": "20", **CONNECTION}
    assert len(rows) == 20 and rows[3] == {"ORDER_ID": 3, "CREATED": "2025-05-01", "STATUS": "NEW", "PAID_ON": None}
    assert [call["kind"] for call in b24.outbound_calls] == ["table_description", "data"]


def test_create_table_runs_the_wizard_and_stores_bi_names(b24, portal, source, receiver):
    table_id = b24.bi.create_table(portal, source, "sales.orders")

    assert [call["kind"] for call in b24.outbound_calls] == ["table_list", "table_description", "data"]
    assert portal.tables[table_id] == {
        "id": table_id, "sourceId": source, "name": "orders", "externalCode": "sales.orders", "externalName": "Orders",
        "columns": [{"name": column["code"], "externalCode": column["code"], "type": column["type"].lower(),
                     "visible": True} for column in COLUMNS]}


def test_preview_map_fields_cover_every_column_of_every_table_with_that_external_code(b24, portal, receiver, source,
                                                                                     table):
    b24.bi.rename_column(portal, table, "STATUS", "STATE")
    b24.bi.hide_column(portal, table, "PAID_ON")
    other = seed_receiver_connector(b24, portal, receiver)
    b24.bi.create_table(portal, other, "sales.orders", "orders_copy", columns={"ORDER_ID": "NUMBER"})
    receiver.requests.clear()

    b24.bi.preview(portal, source, "sales.orders")

    form = receiver.to(DATA)[0]["form"]
    assert form["mapFields[STATUS]"] == "STATUS" and form["mapFields[ORDER_ID]"] == "NUMBER"  # the last table wins
    assert form["mapFields[PAID_ON]"] == "PAID_ON" and not any(key.startswith(("select", "filter")) for key in form)


def test_query_sends_select_limit_and_reduced_map_fields(b24, portal, table, receiver):
    b24.bi.rename_column(portal, table, "STATUS", "STATE")
    b24.bi.hide_column(portal, table, "PAID_ON")

    answer = b24.bi.query(portal, table, ["STATE", "ORDER_ID"], limit=0)
    default = b24.bi.query(portal, table, limit=500)

    assert answer.form == receiver.to(DATA)[0]["form"] == {
        "table": "sales.orders", "select[0]": "STATE", "select[1]": "ORDER_ID", "limit": "0",
        "mapFields[ORDER_ID]": "ORDER_ID", "mapFields[STATUS]": "STATE", **CONNECTION}
    assert list(answer.form)[:3] == ["table", "select[0]", "select[1]"]
    assert [value for key, value in default.form.items() if key.startswith("select")] == ["ORDER_ID", "CREATED", "STATE"]
    assert default.form["limit"] == "500" and "mapFields[PAID_ON]" not in default.form
    assert (answer.header, answer.rows, answer.raw) == (ROWS[0], ROWS[1:], json.dumps(ROWS))
    with pytest.raises(ValueError):
        b24.bi.query(portal, table, ["PAID_ON"])  # hidden columns cannot be selected


# --- the filter ------------------------------------------------------------------------------------

def test_filter_date_range_and_dimension_groups(b24, portal, table, receiver):
    groups = [
        [{"fieldName": "STATUS", "values": ["PAID", "SHIPPED"], "type": "INCLUDE", "operator": "IN_LIST"},
         {"fieldName": "STATUS", "values": ["X"], "type": "EXCLUDE", "operator": "CONTAINS"}],
        [{"fieldName": "PAID_ON", "values": [], "type": "INCLUDE", "operator": "IS_NULL"},
         {"fieldName": "ORDER_ID", "values": ["10", "20"], "type": "EXCLUDE", "operator": "BETWEEN"},
         {"fieldName": "ORDER_ID", "values": ["5"], "type": "EXCLUDE", "operator": "NUMERIC_GREATER_THAN_OR_EQUAL"},
         {"fieldName": "ORDER_ID", "values": ["9"], "type": "INCLUDE", "operator": "NUMERIC_LESS_THAN"},
         {"fieldName": "STATUS", "values": ["^P"], "type": "INCLUDE", "operator": "REGEXP_PARTIAL_MATCH"},
         {"fieldName": "NOPE", "values": ["1"], "type": "INCLUDE", "operator": "EQUALS"}],
        [{"fieldName": "STATUS", "values": ["x"], "type": "INCLUDE", "operator": "REGEXP_EXACT_MATCH"}],
        [{"fieldName": "CREATED", "values": ["2025-05-31 17:01:55"], "type": "INCLUDE", "operator": "EQUALS"},
         {"fieldName": "PAID_ON", "values": ["20250531"], "type": "EXCLUDE", "operator": "EQUALS"}],
    ]

    b24.bi.query(portal, table, ["ORDER_ID"], date_range=("2025-05-01", "2025-05-31"), dimension_filters=groups)

    form = receiver.to(DATA)[0]["form"]
    assert {key: value for key, value in form.items() if key.startswith("filter")} == {
        "filter[>=CREATED]": "01.05.2025 00:00:00",
        "filter[<=CREATED]": "31.05.2025 23:59:59",
        "filter[0][LOGIC]": "OR",
        "filter[0][0][=STATUS][0]": "PAID", "filter[0][0][=STATUS][1]": "SHIPPED",
        "filter[0][1][!%STATUS][0]": "X",
        "filter[1][LOGIC]": "OR",
        "filter[1][0][=PAID_ON]": "0",
        "filter[1][1][!><ORDER_ID][0]": "10", "filter[1][1][!><ORDER_ID][1]": "20",
        "filter[1][2][!>=ORDER_ID][0]": "5",
        "filter[1][3][<ORDER_ID][0]": "9",
        "filter[2][LOGIC]": "OR",  # the REGEXP-only group left nothing and is not sent
        "filter[2][0][=CREATED][0]": "31.05.2025 17:01:55",
        "filter[2][1][!=PAID_ON][0]": "31.05.2025",
    }
    assert phpform.decode(form.items())["filter"]["1"] == {
        "LOGIC": "OR", "0": {"=PAID_ON": "0"}, "1": {"!><ORDER_ID": ["10", "20"]}, "2": {"!>=ORDER_ID": ["5"]},
        "3": {"<ORDER_ID": ["9"]}}
    assert form["mapFields[ORDER_ID]"] == "ORDER_ID" and "mapFields[CREATED]" not in form  # filter-only columns


def test_filter_dates_follow_the_portal_formats(b24, portal, table, receiver):
    portal.datetime_format, portal.date_format = "MM/DD/YYYY HH:MI:SS", "MM/DD/YYYY"
    paid_on = [[{"fieldName": "PAID_ON", "values": ["2025-05-31"], "type": "INCLUDE", "operator": "EQUALS"}]]

    b24.bi.query(portal, table, date_range=("2025-05-01", "2025-05-31"), dimension_filters=paid_on)
    b24.config.short_range_start = True  # before April 2026
    b24.bi.query(portal, table, date_range=("2025-05-01", "9999-12-31"))
    portal.datetime_format = "MM/DD/YYYY H:MI:SS T"
    b24.bi.query(portal, table, date_range=(None, "2025-05-31"))

    first, short_start, twelve_hours = (entry["form"] for entry in receiver.to(DATA))
    assert (first["filter[>=CREATED]"], first["filter[<=CREATED]"]) == ("05/01/2025 00:00:00", "05/31/2025 23:59:59")
    assert first["filter[0][0][=PAID_ON][0]"] == "05/31/2025"
    assert (short_start["filter[>=CREATED]"], short_start["filter[<=CREATED]"]) == ("05/01/2025", "12/31/9999 23:59:59")
    assert "filter[>=CREATED]" not in twelve_hours and twelve_hours["filter[<=CREATED]"] == "05/31/2025 11:59:59 pm"


def test_time_filter_column_and_hidden_columns(b24, portal, table, receiver):
    hidden_status = [[{"fieldName": "STATUS", "values": ["PAID"], "type": "INCLUDE", "operator": "EQUALS"}]]

    b24.bi.query(portal, table, date_range=("2025-05-01", "2025-05-31"), time_filter_column="PAID_ON")
    b24.bi.query(portal, table, date_range=("2025-05-01", "2025-05-31"), time_filter_column="STATUS")
    b24.bi.hide_column(portal, table, "CREATED")
    b24.bi.hide_column(portal, table, "STATUS")
    b24.bi.query(portal, table, date_range=("2025-05-01", "2025-05-31"), dimension_filters=hidden_status)
    b24.bi.hide_column(portal, table, "PAID_ON")
    b24.bi.query(portal, table, date_range=("2025-05-01", "2025-05-31"))

    paid_on, not_a_date, first_visible, no_date = (
        sorted(key for key in entry["form"] if key.startswith("filter")) for entry in receiver.to(DATA))
    assert paid_on == first_visible == ["filter[<=PAID_ON]", "filter[>=PAID_ON]"]
    assert not_a_date == ["filter[<=CREATED]", "filter[>=CREATED]"]
    assert no_date == []


# --- judging the answers -------------------------------------------------------------------------

@pytest.mark.parametrize("body", ['[{"code": "orders", "title": "0"}]', '[{"code": 0, "title": "Orders"}]',
                                  '[{"code": "orders"}]', '{"code": "orders", "title": "Orders"}', "not json",
                                  '[["orders", "Orders"]]', '"orders"'])
def test_invalid_table_lists(b24, portal, source, receiver, body):
    receiver.answers[LIST] = (200, body)

    assert failure(b24.bi.table_list, portal, source).message_key == EMPTY_TABLE_LIST


def test_an_empty_table_list_is_valid(b24, portal, source, receiver):
    receiver.answers[LIST] = (200, "[]")

    assert b24.bi.table_list(portal, source, "zzz") == []
    assert receiver.to(LIST)[0]["form"]["searchString"] == "zzz"


@pytest.mark.parametrize("body", ["[]", '[{"code": "A", "name": "A"}]', '[{"code": "A", "name": "0", "type": "int"}]',
                                  '[{"code": "A", "name": "A", "type": "int"}, "B"]', "{}", "<html>"])
def test_invalid_descriptions(b24, portal, source, receiver, body):
    receiver.answers[DESCRIPTION] = (200, body)

    assert failure(b24.bi.describe, portal, source, "sales.orders").message_key == EMPTY_TABLE_DESCRIPTION


@pytest.mark.parametrize("status, body, transport_key", [
    (500, "boom", HTTP_ERROR), (201, "[]", HTTP_ERROR), (404, "", CANT_CONNECT), (200, "", CANT_CONNECT),
    (200, "0", CANT_CONNECT),
])
def test_failed_calls_and_their_message_keys(b24, portal, table, source, receiver, status, body, transport_key):
    receiver.answers.update({LIST: (status, body), DESCRIPTION: (status, body), DATA: (status, body)})

    listing = failure(b24.bi.table_list, portal, source)
    description = failure(b24.bi.describe, portal, source, "sales.orders")
    query = failure(b24.bi.query, portal, table)

    # The hub reports any failed list or description call with its own key; data calls keep theirs.
    assert (listing.message_key, description.message_key) == (HTTP_ERROR, TABLE_DESCRIPTION_FAILED)
    assert listing.detail.startswith(transport_key) and description.detail.startswith(transport_key)
    assert query.message_key == transport_key
    assert [call["ok"] for call in b24.outbound_calls] == [False, False, False]


def test_no_answer_is_cant_connect(b24, portal, table, source, receiver):
    b24.config.allow_local_connections = False
    refused = failure(b24.bi.query, portal, table)
    b24.config.allow_local_connections = True
    portal.connectors[portal.sources[source]["connectorId"]]["urlData"] = "http://127.0.0.1:9/data"
    dead = failure(b24.bi.query, portal, table)

    assert (refused.message_key, dead.message_key) == (CANT_CONNECT, CANT_CONNECT)
    assert "refused" in refused.detail and "ConnectionError" in dead.detail
    assert receiver.to(DATA) == [] and [call["kind"] for call in b24.outbound_calls] == ["data", "data"]


@pytest.mark.parametrize("body", ['{"rows": []}', "[]", '[["A", "B"], ["x"]]', '[["A"], "row"]', "NaN", "text"])
def test_invalid_data_answers(b24, portal, table, source, receiver, body):
    receiver.answers[DATA] = (200, body)

    assert failure(b24.bi.query, portal, table).message_key == INVALID_ANSWER
    assert failure(b24.bi.preview, portal, source, "sales.orders").message_key == INVALID_ANSWER


def test_the_preview_header_must_hold_the_column_codes(b24, portal, table, source, receiver):
    receiver.answers[DATA] = (200, json.dumps([["ORDER_ID", "CREATED", "STATE", "PAID_ON"], [1, "", "", ""]]))

    error = failure(b24.bi.preview, portal, source, "sales.orders")

    assert error.message_key == INVALID_ANSWER and "STATUS" in error.detail
    assert b24.bi.query(portal, table).header == ["ORDER_ID", "CREATED", "STATE", "PAID_ON"]  # forwarded as is


def test_an_inactive_source_never_gets_a_data_call(b24, portal, table, source, receiver):
    portal.sources[source]["active"] = False

    query = failure(b24.bi.query, portal, table)
    preview = failure(b24.bi.preview, portal, source, "sales.orders")

    assert query.message_key == preview.message_key == NOT_ACTIVE
    assert receiver.to(DATA) == [] and b24.outbound_calls == []
    assert b24.bi.table_list(portal, source)  # the other endpoints are still called


def test_redirects(b24, portal, receiver):
    receiver.answers.update({DESCRIPTION: (200, json.dumps(COLUMNS)), DATA: (200, json.dumps(ROWS)),
                             "/bi/found": (302, Response("", headers={"Location": DATA})),
                             "/bi/temporary": (307, Response("", headers={"Location": DATA})),
                             "/bi/loop": (308, Response("", headers={"Location": "/bi/loop"}))})
    found, temporary, loop = (seed_receiver_connector(b24, portal, receiver, data_path=path)
                              for path in ("/bi/found", "/bi/temporary", "/bi/loop"))

    b24.bi.preview(portal, found, "sales.orders")
    b24.bi.preview(portal, temporary, "sales.orders")
    error = failure(b24.bi.preview, portal, loop, "sales.orders")

    # 302 turns the POST into a GET, which carries no form; 307 keeps the POST.
    sent = {"table": "sales.orders", "limit": "20", **CONNECTION}
    assert [entry["form"] for entry in receiver.to(DATA)] == [{}, sent]
    assert [call["redirects"] for call in b24.outbound_calls if call["kind"] == "data"][:2] == [
        [f"{receiver.url}{DATA}"], [f"{receiver.url}{DATA}"]]
    assert error.message_key == CANT_CONNECT and "redirects" in error.detail and len(receiver.to("/bi/loop")) == 6


# --- preview cache ----------------------------------------------------------------------------------

def test_preview_cache_is_off_by_default(b24, portal, table, source, receiver):
    b24.bi.preview(portal, source, "sales.orders")
    b24.bi.preview(portal, source, "sales.orders")

    assert len(receiver.to(DATA)) == 2


def test_preview_cache_keeps_results_and_failures(b24, portal, table, source, receiver):
    b24.config.preview_cache_seconds = 3600
    first = b24.bi.preview(portal, source, "sales.orders")
    b24.bi.rename_column(portal, table, "STATUS", "STATE")  # the module keys on the codes only
    cached = b24.bi.preview(portal, source, "sales.orders")
    b24.clock.advance(3600)
    receiver.answers[DATA] = (500, "down")
    failed = failure(b24.bi.preview, portal, source, "sales.orders")
    receiver.answers[DATA] = (200, json.dumps(ROWS))
    empty = b24.bi.preview(portal, source, "sales.orders")
    b24.clock.advance(3600)
    fresh = b24.bi.preview(portal, source, "sales.orders")

    assert first == cached == fresh and len(first) == 1
    assert failed.message_key == HTTP_ERROR and empty == []
    assert len(receiver.to(DATA)) == 3


# --- BI names -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["Orders", "1orders", "orders-2", "_orders", "a" * 231, ""])
def test_table_name_rules(b24, portal, source, name):
    assert failure(b24.bi.create_table, portal, source, "sales.orders", name).message_key == INVALID_NAME
    assert portal.tables == {}


def test_table_names_are_unique_on_the_portal(b24, portal, source):
    b24.bi.create_table(portal, source, "sales.orders", "a" * 230)
    b24.bi.create_table(portal, source, "sales.orders")

    assert failure(b24.bi.create_table, portal, source, "sales.orders").message_key == NAME_TAKEN
    assert failure(b24.bi.create_table, portal, source, "sales.orders", "crm_deal").message_key == NAME_TAKEN
    assert len(portal.tables) == 2


def test_the_proposed_table_name_is_the_list_code(b24, portal, source, receiver):
    receiver.answers[LIST] = (200, json.dumps([{"id": "sales.orders", "code": "Sales Orders", "title": "Orders"}]))

    assert failure(b24.bi.create_table, portal, source, "sales.orders").message_key == INVALID_NAME
    assert portal.tables[b24.bi.create_table(portal, source, "sales.orders", "sales_orders")]["name"] == "sales_orders"
    assert failure(b24.bi.create_table, portal, source, "orders").message_key == INVALID_ANSWER  # not listed


def test_column_name_rules(b24, portal, source, receiver):
    receiver.answers[DESCRIPTION] = (200, json.dumps([*COLUMNS, {"code": "order note", "name": "Note", "type": "x"}]))
    receiver.answers[DATA] = (200, json.dumps([[*ROWS[0], "order note"], [*ROWS[1], "fragile"]]))

    proposed = failure(b24.bi.create_table, portal, source, "sales.orders")
    too_long = failure(b24.bi.create_table, portal, source, "sales.orders", columns={"order note": "N" * 33})
    renamed = b24.bi.create_table(portal, source, "sales.orders", "renamed", columns={"order note": "N" * 32})
    hidden = b24.bi.create_table(portal, source, "sales.orders", "hidden", columns={"order note": None})

    assert proposed.message_key == too_long.message_key == INVALID_NAME
    assert portal.tables[renamed]["columns"][-1] == {"name": "N" * 32, "externalCode": "order note",
                                                     "type": "string", "visible": True}
    assert portal.tables[hidden]["columns"][-1]["visible"] is False
    assert failure(b24.bi.rename_column, portal, renamed, "STATUS", "status").message_key == INVALID_NAME
    b24.bi.rename_column(portal, hidden, "order note", "still hidden")  # names of hidden columns are not checked


# --- against the demo connector -------------------------------------------------------------------

def test_end_to_end_against_the_demo_connector(b24, portal):
    source_id = b24.seed_demo(portal)["source_ids"][0]

    listed = b24.bi.table_list(portal, source_id, "ord")
    table_id = b24.bi.create_table(portal, source_id, "public.orders")
    b24.bi.rename_column(portal, table_id, "CUSTOMER", "CLIENT")
    b24.bi.hide_column(portal, table_id, "AMOUNT")
    picked = b24.bi.query(portal, table_id, ["CLIENT", "ORDER_ID"], limit=2,
                          date_range=("2025-05-01", "2025-05-31"))  # the demo ignores the filter
    everything = b24.bi.query(portal, table_id)

    assert listed == [{"externalCode": "public.orders", "code": "demo_orders", "title": "Orders"}]
    assert portal.tables[table_id]["name"] == "demo_orders"
    assert (picked.header, picked.rows) == (["CLIENT", "ORDER_ID"], [["Northwind", 1001], ["Contoso", 1002]])
    assert everything.header == ["ORDER_ID", "CREATED_AT", "CLIENT"] and len(everything.rows) == 3
    assert b24.bi.preview(portal, source_id, "public.orders")[0] == {
        "ORDER_ID": 1001, "CREATED_AT": "2025-05-31 17:01:55", "CUSTOMER": "Northwind", "AMOUNT": 1250.5}


# --- the BI Builder page --------------------------------------------------------------------------

def bi_page(portal, **params) -> str:
    response = requests.get(portal.page_url, params={"user": 1, "view": "bi", **params}, timeout=10)
    assert response.status_code == 200
    return response.text


def test_bi_page_lists_connectors_tables_columns_and_preview(b24, portal):
    b24.add_app("app.other", "other-secret")
    b24.seed_connector(portal, {"title": "Foreign connector", "urlData": "x"}, client_id="app.other")
    source_id = b24.seed_demo(portal)["source_ids"][0]

    home = requests.get(portal.page_url, timeout=10).text
    connections = bi_page(portal)
    tables = bi_page(portal, source=source_id)
    searched = bi_page(portal, source=source_id, search="prod")
    chosen = bi_page(portal, source=source_id, table="public.orders")

    assert 'id="bi-menu-item"' in home and "view=bi" in home
    assert "Demo warehouse" in connections and "Main warehouse" in connections and "Backup warehouse" in connections
    assert "Foreign connector" not in connections and 'id="bi-tables"' not in connections
    assert "Orders" in tables and "Products" in tables and "demo_orders" in tables
    assert "table=public.orders" in tables and "Orders" not in searched and "Products" in searched
    assert 'name="search" value="prod"' in searched
    for text in ("ORDER_ID", "Order ID", "datetime", "money", "Northwind", "1250.5", "2025-05-31 17:01:55"):
        assert text in chosen
    assert 'id="bi-error"' not in chosen
    assert [call["kind"] for call in b24.outbound_calls][-3:] == ["table_list", "table_description", "data"]


def test_bi_page_shows_the_module_error_and_escapes(b24, portal):
    seeded = b24.seed_demo(portal)
    portal.connectors[seeded["connector_id"]]["title"] = "<script>alert(1)</script>"
    source_id = seeded["source_ids"][1]
    next(item for item in portal.sources[source_id]["settings"] if item["code"] == "token")["value"] = "bad"

    html = bi_page(portal, source=source_id)
    denied = bi_page(portal, user=portal.add_user(bi_access=False).id, source=source_id)

    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'id="bi-error"' in html and HTTP_ERROR in html and "HTTP 403" in html
    assert "ACCESS_DENIED" in denied and 'id="bi-tables"' not in denied
