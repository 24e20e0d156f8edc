"""A tiny connector served by the fake itself, so the sandbox demo has data without our app.

``/_demo_connector/{check,table_list,table_description,data}`` answer the way the Analytics hub
expects (reference section 6): tables listed with ``id`` (the externalCode), a BI-safe ``code`` and
a ``title``; UPPER_SNAKE column codes; data that honours ``select`` (BI names, mapped back to codes
through ``mapFields``) and ``limit``. It ignores ``filter``. A source whose ``token`` setting is
``bad`` fails every call.
"""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from . import phpform

bp = Blueprint("fake_demo_connector", __name__, url_prefix="/_demo_connector")

DEMO_LOGO = ("data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCAz"
             "MiAzMiI+PHJlY3Qgd2lkdGg9IjMyIiBoZWlnaHQ9IjMyIiByeD0iNiIgZmlsbD0iIzJmYzZmNiIvPjwvc3ZnPg==")

TABLES = {  # by id, the table's name in the warehouse
    "public.orders": {
        "code": "demo_orders",
        "title": "Orders",
        "columns": [
            {"code": "ORDER_ID", "name": "Order ID", "type": "int"},
            {"code": "CREATED_AT", "name": "Created at", "type": "datetime"},
            {"code": "CUSTOMER", "name": "Customer", "type": "string"},
            {"code": "AMOUNT", "name": "Amount", "type": "money"},
        ],
        "rows": [
            [1001, "2025-05-31 17:01:55", "Northwind", 1250.5],
            [1002, "2025-06-01 09:12:00", "Contoso", 310.0],
            [1003, "2025-06-02 14:45:30", "Fabrikam", 78.25],
        ],
    },
    "public.products": {
        "code": "demo_products",
        "title": "Products",
        "columns": [
            {"code": "SKU", "name": "SKU", "type": "string"},
            {"code": "TITLE", "name": "Title", "type": "string"},
            {"code": "STOCK", "name": "Stock", "type": "int"},
            {"code": "PRICE", "name": "Price", "type": "double"},
        ],
        "rows": [
            ["A-100", "Pallet jack", 12, 420.0],
            ["B-200", "Shelf unit", 40, 95.5],
        ],
    },
}

DEMO_SETTINGS = [
    {"name": "Host", "code": "host", "type": "STRING"},
    {"name": "Port", "code": "port", "type": "INT"},
    {"name": "API token", "code": "token", "type": "STRING"},
]


def _refused() -> Response | None:
    if request.form.get("connection[token]") == "bad":
        return Response("", 403)
    return None


@bp.post("/check")
def check() -> Response:
    return _refused() or Response("OK", 200, content_type="text/plain")


@bp.post("/table_list")
def table_list() -> Response:
    search = (request.form.get("searchString") or "").lower()
    tables = [{"id": table_id, "code": table["code"], "title": table["title"]} for table_id, table in TABLES.items()
              if search in table_id or search in table["title"].lower()]
    return _refused() or jsonify(tables)


@bp.post("/table_description")
def table_description() -> Response:
    table = TABLES.get(request.form.get("table", ""))
    if table is None:
        return jsonify(error="Unknown table"), 404
    return _refused() or jsonify(table["columns"])


@bp.post("/data")
def data() -> Response:
    query = phpform.decode(request.form.items(multi=True))
    table = TABLES.get(query.get("table", ""))
    if table is None:
        return jsonify(error="Unknown table"), 404
    codes = [column["code"] for column in table["columns"]]
    code_of = {name: code for code, name in phpform.items(query.get("mapFields") or {})}
    selected = [name for _, name in phpform.items(query.get("select") or [])]
    header = selected or codes
    positions = [codes.index(code_of.get(name, name)) for name in header if code_of.get(name, name) in codes]
    if len(positions) != len(header):
        return jsonify(error="Unknown column"), 400
    limit = phpform.to_int(query["limit"]) if phpform.is_numeric(query.get("limit")) else 0
    rows = table["rows"][:limit] if limit > 0 else table["rows"]
    return _refused() or jsonify([header, *[[row[i] for i in positions] for row in rows]])


def seed_demo(fake, portal, base: str | None = None) -> dict:
    """One "Demo warehouse" connector owned by our app, pointing here (or at `base`, a server of
    its own: see `serve`), with two sources."""
    base = base or f"{fake.url}/_demo_connector"
    connector_id = fake.seed_connector(portal, {
        "title": "Demo warehouse",
        "logo": DEMO_LOGO,
        "description": "Sample connector served by the sandbox portal.",
        "urlCheck": f"{base}/check",
        "urlTableList": f"{base}/table_list",
        "urlTableDescription": f"{base}/table_description",
        "urlData": f"{base}/data",
        "settings": DEMO_SETTINGS,
    })
    source_ids = [
        fake.seed_source(portal, {"title": "Main warehouse", "connectorId": connector_id,
                                  "settings": {"host": "wh1.demo.test", "port": "5432", "token": "demo-token-1"}}),
        fake.seed_source(portal, {"title": "Backup warehouse", "connectorId": connector_id,
                                  "settings": {"host": "wh2.demo.test", "port": "5433", "token": "demo-token-2"}}),
    ]
    return {"connector_id": connector_id, "source_ids": source_ids}



def create_app():
    """The demo connector alone, as a connector's own server (the benchmark serves it in a process
    of its own, so its checks do not share the fake portal's interpreter)."""
    from flask import Flask

    app = Flask("demo_connector")
    app.register_blueprint(bp)
    return app
