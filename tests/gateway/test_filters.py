"""Bitrix24 urlData filters as SQLAlchemy WHERE clauses, run for real on SQLite, PostgreSQL and MariaDB.

Every semantic case executes a SELECT over one small table on each backend and checks exactly
which row ids come back. The servers are on loopback (TEST_POSTGRES_URL, TEST_MYSQL_URL); an
unreachable server fails the tests rather than skipping them. Each backend gets its own
uniquely named schema (PostgreSQL) or database (MariaDB), dropped at the end.
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import (
    Column, Date, DateTime, Double, Integer, MetaData, Numeric, String, Table, create_engine, func, select,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import CreateSchema, DropSchema

from bitrix_app.gateway.filters import FilterColumn, FilterError, translate
from bitrix_app.services import php_form

# SQLite has no DECIMAL; SQLAlchemy warns that it binds Decimal values as floats.
pytestmark = pytest.mark.filterwarnings("ignore:Dialect sqlite\\+pysqlite does \\*not\\* support Decimal")

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")

metadata = MetaData()
orders = Table(
    "gw_orders", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("qty", Integer),
    Column("amount", Numeric(12, 2)),
    Column("rate", Double),
    Column("name", String(100)),
    Column("day", Date),
    Column("created", DateTime),
    mysql_charset="utf8mb4",
)

ROWS = [
    (1, 10, "100.50", 0.5, "Alpha", date(2025, 5, 1), datetime(2025, 5, 1, 0, 0, 0)),
    (2, 0, "0.00", 0.0, "beta", date(2025, 5, 15), datetime(2025, 5, 15, 12, 30, 0)),
    (3, None, None, None, None, None, None),
    (4, -3, "20.00", 2.25, "GAMMA ray", date(2025, 5, 31), datetime(2025, 5, 31, 23, 59, 59)),
    (5, 7, "7.00", 1.5, "50% off_sale", date(2025, 6, 1), datetime(2025, 6, 1, 0, 0, 0)),
    (6, 12, "12.34", 3.0, "O'Brien", date(2024, 12, 31), datetime(2025, 5, 31, 0, 0, 0)),
    (7, 1, "1.00", 1.0, "", date(2025, 1, 1), datetime(2025, 1, 1, 8, 0, 0)),
    (8, 5, "5.00", 5.0, "Иван", date(2025, 2, 1), datetime(2025, 2, 1, 10, 0, 0)),
]
ALL = {row[0] for row in ROWS}

COLUMNS = {
    "ID": FilterColumn(orders.c.id, "int"),
    "QTY": FilterColumn(orders.c.qty, "int"),
    "AMOUNT": FilterColumn(orders.c.amount, "money"),
    "RATE": FilterColumn(orders.c.rate, "double"),
    "NAME": FilterColumn(orders.c.name, "string"),
    "DAY": FilterColumn(orders.c.day, "date"),
    "CREATED": FilterColumn(orders.c.created, "datetime"),
    # Names as in the reference's example, for the decoded-request test.
    "STATUS": FilterColumn(orders.c.name, "string"),
    "DATE_CREATE": FilterColumn(orders.c.created, "datetime"),
}


class Database:
    """One backend with the table filled in."""

    def __init__(self, engine):
        self.engine = engine

    def ids(self, filter_, portal_format=None) -> set[int]:
        where = translate(filter_, COLUMNS, portal_format)
        query = select(orders.c.id)
        if where is not None:
            query = query.where(where)
        with self.engine.connect() as connection:
            return set(connection.scalars(query))

    def count(self) -> int:
        with self.engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(orders))


def _reachable(url: str, server: str):
    engine = create_engine(url)
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as error:
        engine.dispose()
        pytest.fail(f"{server} at {url} is unreachable, so the filter tests cannot run: {error}")
    return engine


@contextmanager
def _sqlite():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _server(url: str, server: str):
    """A fresh schema (a database, on MariaDB) named gw_filters_<random>, dropped afterwards."""
    engine = _reachable(url, server)
    schema = f"gw_filters_{secrets.token_hex(6)}"
    with engine.begin() as connection:
        connection.execute(CreateSchema(schema))
    try:
        yield engine.execution_options(schema_translate_map={None: schema})
    finally:
        with engine.begin() as connection:
            # MariaDB's DROP SCHEMA is DROP DATABASE, which takes its tables along.
            connection.execute(DropSchema(schema, cascade=engine.dialect.name == "postgresql"))
        engine.dispose()


BACKENDS = {
    "sqlite": _sqlite,
    "postgresql": lambda: _server(POSTGRES_URL, "PostgreSQL"),
    "mariadb": lambda: _server(MYSQL_URL, "MariaDB"),
}


@pytest.fixture(scope="session", params=list(BACKENDS))
def db(request):
    with BACKENDS[request.param]() as engine:
        with engine.begin() as connection:
            metadata.create_all(connection)
            keys = [column.name for column in orders.columns]
            rows = [dict(zip(keys, row)) for row in ROWS]
            for row in rows:
                row["amount"] = None if row["amount"] is None else Decimal(row["amount"])
            connection.execute(orders.insert(), rows)
        yield Database(engine)


def case(filter_, expected, name):
    return pytest.param(filter_, expected, id=name)


NUMBER_CASES = [
    case({"=QTY": "10"}, {1}, "eq"),
    case({"=QTY": "10.0"}, {1}, "eq-int-written-with-decimals"),
    case({"=QTY": " -3 "}, {4}, "eq-negative-padded"),
    case({"QTY": "10"}, {1}, "no-prefix-is-equality"),
    case({"!QTY": "10"}, {2, 4, 5, 6, 7, 8}, "not"),
    case({"!=QTY": "10"}, {2, 4, 5, 6, 7, 8}, "not-eq"),
    case({"==QTY": "-3"}, {4}, "strict-eq"),
    case({"!==QTY": "10"}, {2, 4, 5, 6, 7, 8}, "strict-not-eq"),
    case({"=QTY": {"0": "10", "1": "-3"}}, {1, 4}, "in"),
    case({"@QTY": {"0": "10", "1": "-3"}}, {1, 4}, "at-in"),
    case({"@QTY": "12"}, {6}, "at-scalar"),
    case({"QTY": ["10", "-3"]}, {1, 4}, "no-prefix-list-is-in"),
    case({"!=QTY": {"0": "10", "1": "-3"}}, {2, 5, 6, 7, 8}, "not-in"),
    case({"!@QTY": {"0": "10", "1": "-3"}}, {2, 5, 6, 7, 8}, "at-not-in"),
    case({"!QTY": ["10", "-3"]}, {2, 5, 6, 7, 8}, "not-list-is-not-in"),
    case({">QTY": "7"}, {1, 6}, "gt"),
    case({">=QTY": "7"}, {1, 5, 6}, "ge"),
    case({"<QTY": "1"}, {2, 4}, "lt"),
    case({"<=QTY": "1"}, {2, 4, 7}, "le"),
    case({"!>QTY": "7"}, {2, 4, 5, 7, 8}, "exclude-gt"),
    case({"!>=QTY": "7"}, {2, 4, 7, 8}, "exclude-ge"),
    case({"!<QTY": "1"}, {1, 5, 6, 7, 8}, "exclude-lt"),
    case({"!<=QTY": "1"}, {1, 5, 6, 8}, "exclude-le"),
    case({">QTY": {"0": "7", "1": "100"}}, {1, 6}, "gt-takes-the-first-value"),
    case({"<=QTY": ["1", "-100"]}, {2, 4, 7}, "le-takes-the-first-value"),
    case({"><QTY": {"0": "0", "1": "10"}}, {1, 2, 5, 7, 8}, "between-inclusive"),
    case({"><QTY": ["0", "10", "11"]}, {1, 2, 5, 7, 8}, "between-ignores-a-third-value"),
    case({"!><QTY": {"0": "0", "1": "10"}}, {4, 6}, "not-between"),
    case({"%QTY": "7"}, {5}, "substring-on-a-number-is-equality"),
    case({"!%QTY": "7"}, {1, 2, 4, 6, 7, 8}, "not-substring-on-a-number"),
    case({"=%QTY": "12"}, {6}, "like-on-a-number-is-equality"),
    case({"!=%QTY": "12"}, {1, 2, 4, 5, 7, 8}, "not-like-on-a-number"),
    case({"=AMOUNT": "100.5"}, {1}, "money-eq"),
    case({"<AMOUNT": "1.0E+25", ">AMOUNT": "-1E2"}, ALL - {3}, "money-php-float-notation"),
    case({"=QTY": "1.2E1"}, {6}, "int-php-float-notation"),
    case({"=AMOUNT": ["7", "12.340"]}, {5, 6}, "money-in"),
    case({">AMOUNT": "12.34"}, {1, 4}, "money-gt"),
    case({"<AMOUNT": "5"}, {2, 7}, "money-lt"),
    case({"><AMOUNT": ["7", "20"]}, {4, 5, 6}, "money-between"),
    case({"=RATE": "2.25"}, {4}, "double-eq"),
    case({">RATE": "1.5"}, {4, 6, 8}, "double-gt"),
    case({"<=RATE": "1"}, {1, 2, 7}, "double-le"),
    case({"!><RATE": ["0.5", "3"]}, {2, 8}, "double-not-between"),
]

NULL_CASES = [
    case({"=QTY": "0"}, {2, 3}, "int-zero-is-null-or-zero"),
    case({"!=QTY": "0"}, {1, 4, 5, 6, 7, 8}, "int-not-zero-is-not-null-and-not-zero"),
    case({"=AMOUNT": "0"}, {2, 3}, "money-zero-is-null-or-zero"),
    case({"!=AMOUNT": "0"}, {1, 4, 5, 6, 7, 8}, "money-not-zero"),
    case({"=RATE": "0"}, {2, 3}, "double-zero-is-null-or-zero"),
    case({"!=RATE": "0"}, {1, 4, 5, 6, 7, 8}, "double-not-zero"),
    case({"=NAME": "0"}, {3}, "string-is-null"),
    case({"==NAME": "0"}, {3}, "string-strict-is-null"),
    case({"!=NAME": "0"}, ALL - {3}, "string-is-not-null"),
    case({"=DAY": "0"}, {3}, "date-is-null"),
    case({"!=DAY": "0"}, ALL - {3}, "date-is-not-null"),
    case({"=CREATED": "0"}, {3}, "datetime-is-null"),
    case({"!==CREATED": "0"}, ALL - {3}, "datetime-is-not-null"),
    case({"=QTY": {"0": "0"}}, {2}, "int-list-zero-is-a-value"),
    case({"!=QTY": {"0": "0"}}, {1, 4, 5, 6, 7, 8}, "int-list-not-zero-is-a-value"),
    case({"@QTY": "0"}, {2}, "at-zero-is-a-value"),
    case({"=NAME": {"0": "0"}}, set(), "string-list-zero-is-a-value"),
    case({"!=NAME": {"0": "0"}}, ALL, "string-not-in-zero-matches-null-too"),
]

STRING_CASES = [
    case({"=NAME": "beta"}, {2}, "eq"),
    case({"=NAME": "BETA"}, {2}, "eq-ignores-case"),
    case({"=NAME": "alpha"}, {1}, "eq-ignores-case-the-other-way"),
    case({"=NAME": "alph"}, set(), "eq-is-not-a-prefix-match"),
    case({"=NAME": ""}, {7}, "eq-empty-string"),
    case({"=NAME": "Иван"}, {8}, "eq-non-ascii"),
    case({"=NAME": "o'brien"}, {6}, "eq-with-a-quote"),
    case({"=NAME": ["alpha", "GAMMA RAY"]}, {1, 4}, "in"),
    case({"@NAME": ["alpha", "beta"]}, {1, 2}, "at-in"),
    case({"!=NAME": "beta"}, ALL - {2}, "not-eq-matches-null"),
    case({"!=NAME": ""}, ALL - {7}, "not-eq-empty-string"),
    case({"!=NAME": ["alpha", "gamma ray"]}, {2, 3, 5, 6, 7, 8}, "not-in-matches-null"),
    case({"!@NAME": ["alpha", "gamma ray"]}, {2, 3, 5, 6, 7, 8}, "at-not-in"),
    case({"!NAME": ["alpha", "gamma ray"]}, {2, 3, 5, 6, 7, 8}, "not-list-is-not-in"),
    case({"%NAME": "alp"}, {1}, "substring"),
    case({"%NAME": "ALP"}, {1}, "substring-ignores-case"),
    case({"%NAME": "RaY"}, {4}, "substring-ignores-case-mixed"),
    case({"%NAME": "a"}, {1, 2, 4, 5}, "substring-single-letter"),
    case({"%NAME": "ва"}, {8}, "substring-non-ascii"),
    case({"%NAME": ["alp", "BRI"]}, {1, 6}, "substring-ored-over-a-list"),
    case({"%NAME": "50%"}, {5}, "substring-percent-is-literal"),
    case({"%NAME": "%"}, {5}, "substring-only-percent"),
    case({"%NAME": "_"}, {5}, "substring-underscore-is-literal"),
    case({"%NAME": "f%s"}, set(), "substring-percent-is-not-a-wildcard"),
    case({"%NAME": "f_s"}, {5}, "substring-with-underscore"),
    case({"%NAME": "/"}, set(), "substring-escape-character-is-literal"),
    case({"!%NAME": "a"}, {3, 6, 7, 8}, "not-substring-matches-null"),
    case({"!%NAME": ["a", "brien"]}, {3, 7, 8}, "not-substring-list"),
    case({"NAME": "a%"}, {1}, "no-prefix-is-like"),
    case({"NAME": "%A"}, {1, 2}, "no-prefix-like-ignores-case"),
    case({"NAME": "_eta"}, {2}, "no-prefix-like-underscore"),
    case({"NAME": "alpha"}, {1}, "no-prefix-like-without-wildcards"),
    case({"NAME": "50\\%%"}, {5}, "like-escaped-percent"),
    case({"NAME": "%\\_%"}, {5}, "like-escaped-underscore"),
    case({"NAME": "5_\\_%"}, set(), "like-escaped-underscore-must-be-literal"),
    case({"NAME": "50/%"}, set(), "like-slash-is-a-plain-character"),
    case({"!NAME": "a%"}, ALL - {1}, "not-like-matches-null"),
    case({"=%NAME": "%RAY"}, {4}, "eq-percent-like"),
    case({"%=NAME": "o'%"}, {6}, "percent-eq-like"),
    case({"=%NAME": ["a%", "b%"]}, {1, 2}, "like-list-is-ored"),
    case({"!=%NAME": "%a"}, {3, 4, 5, 6, 7, 8}, "not-eq-percent-like"),
    case({"!%=NAME": "%a"}, {3, 4, 5, 6, 7, 8}, "not-percent-eq-like"),
    case({">NAME": "b", "<NAME": "z"}, {2, 4, 6}, "ordering-ignores-case"),
    case({"><NAME": ["B", "h"]}, {2, 4}, "between"),
    case({"!><NAME": ["b", "z"]}, {1, 3, 5, 7, 8}, "not-between-matches-null"),
    case({">=NAME": ["gamma ray", "a"]}, {4, 6, 8}, "ge-takes-the-first-value"),
]

INJECTION_CASES = [
    case({"=NAME": "' OR 1=1 --"}, set(), "eq-or-1-1"),
    case({"%NAME": "' OR 1=1 --"}, set(), "substring-or-1-1"),
    case({"NAME": "' OR '1'='1"}, set(), "like-or-1-1"),
    case({"=NAME": "\\' OR 1=1 #"}, set(), "backslash-quote"),
    case({"=NAME": ["x'); DROP TABLE gw_orders; --", "beta"]}, {2}, "drop-table-in-a-list"),
    case({"=%NAME": "%' OR name LIKE '%"}, set(), "like-pattern-breakout"),
    case({"!=NAME": "' OR 1=1 --"}, ALL, "negated-injection-is-just-a-value"),
]

DATE_CASES = [
    case({">=DAY": "15.05.2025"}, {2, 4, 5}, "ge-date-only"),
    case({"<=DAY": "31.05.2025 23:59:59"}, {1, 2, 4, 6, 7, 8}, "datetime-value-reduced-to-date"),
    case({">DAY": "31.05.2025 10:00:00"}, {5}, "gt-datetime-value-reduced-to-date"),
    case({"=DAY": "2025-05-31"}, {4}, "eq-iso"),
    case({"=DAY": "31.05.2025"}, {4}, "eq-dotted"),
    case({"=DAY": "05/31/2025 23:59:59"}, {4}, "eq-us-datetime"),
    case({"=DAY": ["2025-05-01", "31.12.2024"]}, {1, 6}, "in"),
    case({"!=DAY": ["2025-05-01"]}, {2, 4, 5, 6, 7, 8}, "not-in"),
    case({"!=DAY": "2025-05-01"}, {2, 4, 5, 6, 7, 8}, "not-eq"),
    case({"<DAY": "2025-01-01"}, {6}, "lt"),
    case({"!<DAY": "2025-05-01"}, {1, 2, 4, 5}, "exclude-lt"),
    case({"><DAY": ["01.05.2025", "31.05.2025"]}, {1, 2, 4}, "between"),
    case({"!><DAY": ["01.05.2025", "31.05.2025"]}, {5, 6, 7, 8}, "not-between"),
]

DATETIME_CASES = [
    case({">=CREATED": "01.05.2025 00:00:00", "<=CREATED": "31.05.2025 23:59:59"}, {1, 2, 4, 6},
         "bitrix-date-range"),
    case({">=CREATED": "05/01/2025 00:00:00", "<=CREATED": "05/31/2025 23:59:59"}, {1, 2, 4, 6},
         "us-date-range"),
    case({">=CREATED": "01.05.2025", "<=CREATED": "31.05.2025"}, {1, 2, 4, 6}, "date-only-range"),
    case({">=CREATED": "2025-05-01", "<=CREATED": "2025-05-31"}, {1, 2, 4, 6}, "iso-date-only-range"),
    case({"<=CREATED": "31.05.2025"}, {1, 2, 4, 6, 7, 8}, "le-date-only-is-end-of-day"),
    case({"<=CREATED": "31.05.2025 00:00:00"}, {1, 2, 6, 7, 8}, "le-explicit-midnight"),
    case({"<CREATED": "31.05.2025"}, {1, 2, 7, 8}, "lt-date-only-is-midnight"),
    case({"=CREATED": "31.05.2025"}, {6}, "eq-date-only-is-midnight"),
    case({">CREATED": "31.05.2025"}, {4, 5}, "gt-date-only-is-midnight"),
    case({">=CREATED": "2025-05-31"}, {4, 5, 6}, "ge-date-only"),
    case({"!<=CREATED": "31.05.2025"}, {5}, "exclude-le-date-only"),
    case({"=CREATED": "2025-05-15T12:30:00"}, {2}, "eq-iso-t"),
    case({"=CREATED": "2025-05-15 12:30"}, {2}, "eq-iso-without-seconds"),
    case({"=CREATED": "15.05.2025 12:30"}, {2}, "eq-dotted-without-seconds"),
    case({"=CREATED": "05/15/2025 12:30:00"}, {2}, "eq-us"),
    case({"=CREATED": ["2025-05-01 00:00:00", "01.06.2025"]}, {1, 5}, "in"),
    case({"!=CREATED": "15.05.2025 12:30:00"}, {1, 4, 5, 6, 7, 8}, "not-eq"),
    case({"><CREATED": ["2025-05-31", "2025-05-31"]}, {4, 6}, "between-one-whole-day"),
    case({"!><CREATED": ["2025-05-31", "2025-05-31"]}, {1, 2, 5, 7, 8}, "not-between"),
]

LOGIC_CASES = [
    case({"LOGIC": "OR", "0": {"=QTY": "10"}, "1": {"=NAME": "beta"}}, {1, 2}, "or"),
    case({"logic": "or", "0": {"=QTY": "10"}, "1": {"=NAME": "beta"}}, {1, 2}, "or-lower-case"),
    case({"LOGIC": "OR", "=QTY": "10", "=NAME": "beta"}, {1, 2}, "or-over-plain-keys"),
    case({"LOGIC": "AND", ">QTY": "0", "<QTY": "10"}, {5, 7, 8}, "and"),
    case({">QTY": "0", "<QTY": "10"}, {5, 7, 8}, "and-is-the-default"),
    case({"LOGIC": "NOT", ">QTY": "5"}, {2, 4, 7, 8}, "not"),
    case({"LOGIC": "Not", ">QTY": "0", "<QTY": "10"}, {1, 2, 4, 6}, "not-is-a-negated-and"),
    case({">QTY": "0", "0": {"LOGIC": "OR", "0": {"=NAME": {"0": "alpha"}}, "1": {"=NAME": {"0": "beta"}}}},
         {1}, "top-level-and-with-a-group"),
    case({">=CREATED": "01.05.2025 00:00:00", "<=CREATED": "31.05.2025 23:59:59",
          "0": {"LOGIC": "OR", "0": {"=NAME": {"0": "alpha"}}, "1": {"=NAME": {"0": "GAMMA RAY"}}}},
         {1, 4}, "date-range-and-a-dimension-group"),
    case({"0": {"LOGIC": "OR", "0": {"!=NAME": {"0": "alpha", "1": "beta"}}}}, {3, 4, 5, 6, 7, 8},
         "exclude-group"),
    case({"0": {"LOGIC": "OR", "0": {"%NAME": {"0": "alp"}}, "1": {"><QTY": {"0": "5", "1": "7"}}},
          "1": {"LOGIC": "OR", "0": {"!=DAY": "0"}}}, {1, 5, 8}, "two-groups"),
    case({"0": {"LOGIC": "OR", "0": {"LOGIC": "AND", ">=QTY": "5", "<=QTY": "10"},
                "1": {"LOGIC": "NOT", "0": {"!=NAME": "0"}}}}, {1, 3, 5, 8}, "nested-and-not"),
    case([{"=QTY": "10"}, {"=NAME": "alpha"}], {1}, "python-list-of-sub-filters"),
    case({"0": [{">QTY": "5"}, {"<QTY": "11"}]}, {1, 5}, "python-list-sub-filter"),
    case({"=QTY": [], ">QTY": "7"}, {1, 6}, "empty-list-entry-is-skipped"),
    case({"0": {"LOGIC": "OR"}, ">QTY": "7"}, {1, 6}, "empty-group-is-skipped"),
    case({"LOGIC": "OR", "0": {"=QTY": {}}, "1": {"=QTY": "12"}}, {6}, "empty-list-inside-or"),
    case({"0": {"0": {"0": {"0": {"0": {"0": {"0": {"=QTY": "12"}}}}}}}}, {6}, "eight-levels-deep"),
    case({}, ALL, "empty-filter"),
    case(None, ALL, "absent-filter"),
]

SEMANTIC_CASES = NUMBER_CASES + NULL_CASES + STRING_CASES + INJECTION_CASES + DATE_CASES + DATETIME_CASES + LOGIC_CASES


@pytest.mark.parametrize("filter_, expected", SEMANTIC_CASES)
def test_filter_selects_exactly_these_rows(db, filter_, expected):
    assert db.ids(filter_) == expected


US_12_HOUR = "MM/DD/YYYY H:MI:SS TT"


@pytest.mark.parametrize("portal_format, filter_, expected", [
    pytest.param(US_12_HOUR, {">=CREATED": "05/01/2025 12:00:00 AM", "<=CREATED": "05/31/2025 11:59:59 PM"},
                 {1, 2, 4, 6}, id="12-hour-date-range"),
    pytest.param(US_12_HOUR, {"=CREATED": "05/15/2025 12:30:00 PM"}, {2}, id="12-hour-noon"),
    pytest.param(US_12_HOUR, {"=CREATED": "05/31/2025 11:59:59 pm"}, {4}, id="12-hour-lower-case-pm"),
    pytest.param(US_12_HOUR, {"<=CREATED": "05/31/2025"}, {1, 2, 4, 6, 7, 8}, id="12-hour-date-part"),
    pytest.param(US_12_HOUR, {"=DAY": "05/31/2025"}, {4}, id="12-hour-format-date-column"),
    pytest.param(US_12_HOUR, {"=CREATED": "2025-05-15 12:30:00"}, {2}, id="iso-still-accepted"),
    pytest.param("DD MMMM YYYY HH:MI:SS", {"=DAY": "31 May 2025"}, {4}, id="month-name"),
    pytest.param("DD MMMM YYYY HH:MI:SS", {"><CREATED": ["1 May 2025 00:00:00", "31 may 2025"]},
                 {1, 2, 4, 6}, id="month-name-range"),
    pytest.param("DD M YYYY", {"=DAY": "1 Jun 2025"}, {5}, id="short-month-name"),
    pytest.param("DD.MM.YYYY HH:MI:SS", {"=DAY": "01.06.2025"}, {5}, id="dotted-configured"),
])
def test_configured_portal_format(db, portal_format, filter_, expected):
    assert db.ids(filter_, portal_format) == expected


def test_a_decoded_urldata_request(db):
    body = ("filter%5B%3E%3DDATE_CREATE%5D=01.05.2025+00%3A00%3A00&filter%5B%3C%3DDATE_CREATE%5D=31.05.2025+23%3A59%3A59"
            "&filter%5B0%5D%5BLOGIC%5D=OR&filter%5B0%5D%5B0%5D%5B%3DSTATUS%5D%5B0%5D=alpha"
            "&filter%5B0%5D%5B1%5D%5B%3DSTATUS%5D%5B0%5D=GAMMA+RAY&filter%5B0%5D%5B1%5D%5B%3DSTATUS%5D%5B1%5D=beta")
    decoded = php_form.decode(parse_qsl(body, keep_blank_values=True))
    assert decoded["filter"]["0"]["1"] == {"=STATUS": {"0": "GAMMA RAY", "1": "beta"}}
    assert db.ids(decoded["filter"]) == {1, 2, 4}
    assert db.ids({**decoded["filter"], "1": {"%STATUS": "50%"}}) == set()


@pytest.mark.parametrize("key", [
    "=NAME; DROP TABLE gw_orders", "=NAME) OR (1=1", "NAME--", "=name", "=gw_orders.name", "=\"NAME\"",
])
def test_injection_in_keys_is_an_unknown_column(db, key):
    with pytest.raises(FilterError) as caught:
        db.ids({key: "x"})
    assert caught.value.code == "FILTER_UNKNOWN_COLUMN"
    assert db.count() == len(ROWS)


def test_the_table_survives_injected_values(db):
    for filter_, _ in [param.values for param in INJECTION_CASES]:
        db.ids(filter_)
    assert db.count() == len(ROWS)


# Errors: no database needed, the filter is refused before any SQL exists.

@pytest.mark.parametrize("filter_, code, words", [
    ({"=NOPE": "1"}, "FILTER_UNKNOWN_COLUMN", ['"NOPE"']),
    ({"0": {"LOGIC": "OR", "0": {">=MISSING_COL": "1"}}}, "FILTER_UNKNOWN_COLUMN", ["MISSING_COL"]),
    ({"=": "1"}, "FILTER_UNKNOWN_COLUMN", ['""']),
    ({"=QTY": "abc"}, "FILTER_BAD_VALUE", ['"abc"', "QTY", "not a number"]),
    ({"=QTY": "12.5"}, "FILTER_BAD_VALUE", ["QTY", "whole number"]),
    ({"=QTY": ""}, "FILTER_BAD_VALUE", ["QTY"]),
    ({"=QTY": "1 OR 1=1"}, "FILTER_BAD_VALUE", ["QTY"]),
    ({"=QTY": "99999999999999999999"}, "FILTER_BAD_VALUE", ["out of range"]),
    ({"=QTY": "1e999999999"}, "FILTER_BAD_VALUE", ["out of range"]),
    ({">AMOUNT": "1e41"}, "FILTER_BAD_VALUE", ["out of range"]),
    ({">RATE": "1e-41"}, "FILTER_BAD_VALUE", ["out of range"]),
    ({">QTY": ["5", "x"]}, "FILTER_BAD_VALUE", ['"x"']),
    ({"=AMOUNT": "1,5"}, "FILTER_BAD_VALUE", ["AMOUNT", '"1,5"']),
    ({"=RATE": "NaN"}, "FILTER_BAD_VALUE", ["RATE"]),
    ({"=RATE": "Infinity"}, "FILTER_BAD_VALUE", ["RATE"]),
    ({"=RATE": "1" * 101}, "FILTER_BAD_VALUE", ["RATE"]),
    ({"=DAY": "2025-13-01"}, "FILTER_BAD_VALUE", ["DAY", '"2025-13-01"', "DD.MM.YYYY"]),
    ({">=CREATED": "yesterday"}, "FILTER_BAD_VALUE", ["CREATED", '"yesterday"']),
    ({"=CREATED": "05/31/2025 11:59:59 PM"}, "FILTER_BAD_VALUE", ["CREATED"]),
    ({"=NAME": "a\x00b"}, "FILTER_BAD_VALUE", ["NUL"]),
    ({"><QTY": "5"}, "FILTER_BAD_VALUE", ["two values"]),
    ({"><QTY": {"0": "5"}}, "FILTER_BAD_VALUE", ["two values"]),
    ({"LOGIC": "XOR", "=QTY": "1"}, "FILTER_BAD_LOGIC", ['"XOR"']),
    ({"LOGIC": {"0": "OR"}}, "FILTER_BAD_LOGIC", ["AND, OR or NOT"]),
    ({"LOGIC": "OR", "logic": "AND"}, "FILTER_BAD_LOGIC", ["more than once"]),
    ({"=QTY": None}, "FILTER_BAD_SHAPE", ['"=QTY"']),
    ({"=QTY": 5}, "FILTER_BAD_SHAPE", ['"=QTY"']),
    ({"=QTY": {"0": {"0": "1"}}}, "FILTER_BAD_SHAPE", ['"=QTY"']),
    ({"=QTY": {"a": "1"}}, "FILTER_BAD_SHAPE", ['"=QTY"']),
    ({"=QTY": ["1", 2]}, "FILTER_BAD_SHAPE", ['"=QTY"']),
    ({"0": "x"}, "FILTER_BAD_SHAPE", ["sub-filter"]),
    ("=QTY", "FILTER_BAD_SHAPE", ["filter"]),
    ({None: "1"}, "FILTER_BAD_SHAPE", ["key"]),
])
def test_bad_filters_are_refused_with_a_sentence(filter_, code, words):
    with pytest.raises(FilterError) as caught:
        translate(filter_, COLUMNS)
    assert caught.value.code == code
    assert str(caught.value) == caught.value.message
    for word in words:
        assert word in caught.value.message


def _nested(depth: int) -> dict:
    node: dict = {"=QTY": "1"}
    for _ in range(depth - 1):
        node = {"0": node}
    return node


def test_limits():
    assert translate(_nested(8), COLUMNS) is not None
    assert translate({str(i): {"=QTY": "1"} for i in range(1000)}, COLUMNS) is not None
    assert translate({"=QTY": [str(i) for i in range(1000)]}, COLUMNS) is not None
    too_complex = [
        _nested(9),
        _nested(100_000),  # as deep as a hostile form body can make it: refused without recursing
        {str(i): {"=QTY": "1"} for i in range(1001)},
        {"=QTY": [str(i) for i in range(1001)]},
        {str(i): {"=QTY": [str(j) for j in range(1000)]} for i in range(11)},
    ]
    for filter_ in too_complex:
        with pytest.raises(FilterError) as caught:
            translate(filter_, COLUMNS)
        assert caught.value.code == "FILTER_TOO_COMPLEX"


@pytest.mark.parametrize("filter_", [None, {}, [], "", {"=QTY": []}, {"0": {}}, {"0": {"LOGIC": "NOT"}}])
def test_empty_filters_translate_to_none(filter_):
    assert translate(filter_, COLUMNS) is None


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect(), mysql.dialect()], ids=lambda d: d.name)
def test_values_travel_only_as_bound_parameters(dialect):
    value = "' OR 1=1 --"
    compiled = translate({"=NAME": value, "%NAME": value, "NAME": value, "=DAY": "2025-05-31"},
                         COLUMNS).compile(dialect=dialect)
    assert "OR 1=1" not in str(compiled) and "2025" not in str(compiled)
    assert value in compiled.params.values()


def test_a_configuration_mistake_is_not_a_filter_error():
    with pytest.raises(ValueError, match="type 'text'"):
        translate({"=X": "1"}, {"X": FilterColumn(orders.c.name, "text")})
    with pytest.raises(ValueError, match="am/pm"):
        translate({"=DAY": "1"}, COLUMNS, "DD.MM.YYYY H:MI")
    with pytest.raises(ValueError) as caught:
        translate({"=DAY": "1"}, COLUMNS, "DD.MM.YYYY H:MI")
    assert not isinstance(caught.value, FilterError)
