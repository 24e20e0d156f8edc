"""Fixtures for the connector gateway: one sample database per kind (a real PostgreSQL and a real
MariaDB database created for the session and dropped after it, and a SQLite file in the test
GATEWAY_SQLITE_DIR), and helpers that call the gateway's endpoints the way Bitrix24 does."""
from __future__ import annotations

import os
import secrets
from datetime import date, datetime
from decimal import Decimal

import pytest
import requests
from sqlalchemy import (Boolean, Column, Date, DateTime, Float, Integer, MetaData, Numeric, String, Table, Text,
                        create_engine, text)
from sqlalchemy.engine import make_url

from bitrix_app.models import Database
from bitrix_app.sandbox.fake import phpform

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")

metadata = MetaData()
orders = Table(
    "orders", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("Customer Name", String(100)),
    Column("amount", Numeric(12, 2)),
    Column("rate", Float),
    Column("paid", Boolean),
    Column("ordered_on", Date),
    Column("created_at", DateTime),
    Column("Сумма", Numeric(12, 2)),
    Column("note", Text),
    mysql_charset="utf8mb4",
)
ORDERS = [
    (1, "Northwind", Decimal("1250.50"), 0.5, True, date(2025, 5, 1), datetime(2025, 5, 1, 0, 0, 0), Decimal("1"), "first"),
    (2, "Contoso", Decimal("310.00"), 1.25, False, date(2025, 5, 15), datetime(2025, 5, 15, 12, 30, 0), None, None),
    (3, None, None, None, None, None, None, None, "no data"),
    (4, "Fabrikam", Decimal("78.25"), 2.0, True, date(2025, 5, 31), datetime(2025, 5, 31, 23, 59, 59), Decimal("3"), "quote \" and \\ back"),
    (5, "O'Brien & Sons", Decimal("0.00"), 0.0, False, date(2025, 6, 1), datetime(2025, 6, 1, 0, 0, 0), Decimal("5"), "Иван"),
]
KINDS = ("postgresql", "mysql", "sqlite")


def _fill(engine) -> None:
    with engine.begin() as connection:
        metadata.create_all(connection)
        keys = [column.name for column in orders.columns]
        connection.execute(orders.insert(), [dict(zip(keys, row)) for row in ORDERS])
        connection.execute(text("CREATE VIEW paid_orders AS SELECT id, amount FROM orders WHERE paid = "
                                + ("true" if engine.dialect.name == "postgresql" else "1")))


@pytest.fixture(scope="session")
def sample_databases(gateway_sqlite_dir):
    """kind -> the fields to add that database through the API (password-less local servers)."""
    name = f"gw_e2e_{secrets.token_hex(4)}"
    admin_pg = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    admin_my = create_engine(MYSQL_URL, isolation_level="AUTOCOMMIT")
    with admin_pg.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    with admin_my.connect() as connection:
        connection.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    engines = {
        "postgresql": create_engine(make_url(POSTGRES_URL).set(database=name)),
        "mysql": create_engine(make_url(MYSQL_URL).set(database=name)),
        "sqlite": create_engine(f"sqlite:///{gateway_sqlite_dir / 'orders.db'}"),
    }
    for engine in engines.values():
        _fill(engine)
        engine.dispose()
    pg, my = make_url(POSTGRES_URL), make_url(MYSQL_URL)
    yield {
        "postgresql": {"kind": "postgresql", "host": "127.0.0.1", "port": pg.port or 5432, "database": name,
                       "user": pg.username or "postgres", "password": pg.password or "", "tlsMode": "disable"},
        "mysql": {"kind": "mysql", "host": "127.0.0.1", "port": my.port or 3306, "database": name,
                  "user": my.username or "root", "password": my.password or "", "tlsMode": "disable"},
        "sqlite": {"kind": "sqlite", "database": "orders.db"},
    }
    with admin_pg.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    with admin_my.connect() as connection:
        connection.execute(text(f"DROP DATABASE `{name}`"))
    admin_pg.dispose()
    admin_my.dispose()


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


@pytest.fixture
def admin(open_tab, installed_portal):
    return open_tab(installed_portal)


@pytest.fixture
def added(admin, sample_databases, kind, fake, installed_portal):
    """The sample database of `kind`, added through the API → (api result, Bitrix24 source)."""
    response = admin.post("/databases", json={"title": f"Orders ({kind})", **sample_databases[kind]})
    assert response.status_code == 201, response.get_json()
    result = response.get_json()["result"]
    return result, installed_portal.sources[result["sourceId"]]


class Endpoints:
    """Calls the gateway's endpoints exactly as Bitrix24 does: form-encoded PHP brackets,
    `connection[...]` = the source's stored settings."""

    def __init__(self, connector: dict, settings: dict):
        self.connector = connector
        self.settings = settings

    def post(self, endpoint: str, data: dict | None = None, connection: dict | None = None, **kwargs):
        url = self.connector[{"check": "urlCheck", "tables": "urlTableList", "describe": "urlTableDescription",
                              "data": "urlData"}[endpoint]]
        body = {**(data or {}), "connection": self.settings if connection is None else connection}
        return requests.post(url, data=phpform.encode(body), timeout=30, allow_redirects=False, **kwargs)

    def data(self, table: str, **fields) -> list:
        response = self.post("data", {"table": table, **fields})
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def endpoints(added, installed_portal) -> Endpoints:
    _result, source = added
    connector = installed_portal.connectors[source["connectorId"]]
    return Endpoints(connector, {item["code"]: item["value"] for item in source["settings"]})


def table_id(endpoints: Endpoints, name: str) -> str:
    entries = endpoints.post("tables", {"searchString": ""}).json()
    return next(entry["id"] for entry in entries if entry["title"].endswith(name))


def stored_database(app, database_id: int) -> Database:
    with app.extensions["bitrix"].session_factory() as session:
        return session.get(Database, database_id)
