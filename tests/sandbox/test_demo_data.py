"""The sandbox's demo database: shape, types as SQLAlchemy sees them, dates, determinism, the view
and the atomic replacement of an existing file."""
from __future__ import annotations

import hashlib
import re
import sqlite3
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy
from sqlalchemy import create_engine, inspect, select

from bitrix_app.sandbox import demo_data
from bitrix_app.sandbox.demo_data import DEMO_TABLES, create_demo_database

TODAY = date(2025, 6, 15)
OPEN_STAGES = {"NEW", "PREPARATION", "PROPOSAL", "NEGOTIATION"}
ALL_STAGES = OPEN_STAGES | {"WON", "LOST"}


@pytest.fixture(scope="module")
def demo_path(tmp_path_factory):
    return create_demo_database(tmp_path_factory.mktemp("demo") / "demo.db", today=TODAY)


@pytest.fixture(scope="module")
def db(demo_path):
    connection = sqlite3.connect(demo_path)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def engine(demo_path):
    engine = create_engine(f"sqlite:///{demo_path}")
    yield engine
    engine.dispose()


def scalar(connection, sql: str):
    return connection.execute(sql).fetchone()[0]


def checksum(path) -> str:
    """A digest of every row of every table and the view, in a fixed order."""
    digest = hashlib.sha256()
    with sqlite3.connect(path) as connection:
        for table in DEMO_TABLES:
            for row in connection.execute(f"SELECT * FROM {table} ORDER BY id"):
                digest.update(repr(row).encode())
        for row in connection.execute("SELECT * FROM deal_totals_by_month ORDER BY month, stage"):
            digest.update(repr(row).encode())
    connection.close()
    return digest.hexdigest()


# --- shape -----------------------------------------------------------------------------------

def test_the_tables_hold_a_realistic_sample(db):
    assert scalar(db, "SELECT COUNT(*) FROM companies") == 300
    assert scalar(db, "SELECT COUNT(*) FROM products") == 60
    assert scalar(db, "SELECT COUNT(*) FROM deals") >= 12_000
    assert 27_000 <= scalar(db, "SELECT COUNT(*) FROM deal_items") <= 33_000


def test_every_reference_points_at_an_existing_row(db):
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert scalar(db, "SELECT COUNT(*) FROM deals WHERE id NOT IN (SELECT deal_id FROM deal_items)") == 0


def test_names_are_realistic_and_include_cyrillic_companies(db):
    names = [row[0] for row in db.execute("SELECT name FROM companies")]
    assert len(set(names)) == len(names)
    assert "ООО Ромашка" in names
    cyrillic = [name for name in names if re.search("[А-Яа-яЁё]", name)]
    assert 10 <= len(cyrillic) <= 60
    assert scalar(db, "SELECT COUNT(DISTINCT sku) FROM products") == 60
    assert scalar(db, "SELECT COUNT(DISTINCT owner) FROM deals") >= 10


def test_deal_values_are_consistent(db):
    stages = {row[0] for row in db.execute("SELECT DISTINCT stage FROM deals")}
    assert stages == ALL_STAGES
    assert scalar(db, "SELECT COUNT(*) FROM deals WHERE probability < 0 OR probability > 1") == 0
    assert scalar(db, "SELECT COUNT(*) FROM deals WHERE length(currency) != 3") == 0
    assert scalar(db, "SELECT COUNT(*) FROM companies WHERE is_partner NOT IN (0, 1)") == 0
    mismatched = scalar(db, """
        SELECT COUNT(*) FROM deals
        JOIN (SELECT deal_id, SUM(quantity * price) AS total FROM deal_items GROUP BY deal_id) AS items
          ON items.deal_id = deals.id
        WHERE abs(deals.amount - items.total) > 0.01
    """)
    assert mismatched == 0


# --- types as SQLAlchemy reports them --------------------------------------------------------

EXPECTED_TYPES = {
    "companies": {"id": "INTEGER", "name": "VARCHAR(120)", "industry": "VARCHAR(60)", "city": "VARCHAR(60)",
                  "country": "VARCHAR(2)", "created_at": "DATETIME", "is_partner": "BOOLEAN"},
    "products": {"id": "INTEGER", "sku": "VARCHAR(20)", "unit_price": "NUMERIC(12, 2)", "in_stock": "INTEGER"},
    "deals": {"id": "INTEGER", "company_id": "INTEGER", "stage": "VARCHAR(20)", "amount": "NUMERIC(14, 2)",
              "currency": "VARCHAR(3)", "created_at": "DATETIME", "closed_on": "DATE", "owner": "VARCHAR(80)",
              "probability": "REAL"},
    "deal_items": {"id": "INTEGER", "deal_id": "INTEGER", "product_id": "INTEGER", "quantity": "INTEGER",
                   "price": "NUMERIC(12, 2)"},
}


@pytest.mark.parametrize("table", DEMO_TABLES)
def test_the_inspector_reports_the_declared_types(engine, table):
    columns = {column["name"]: column for column in inspect(engine).get_columns(table)}
    for name, expected in EXPECTED_TYPES[table].items():
        assert str(columns[name]["type"]) == expected, name
    assert inspect(engine).get_pk_constraint(table)["constrained_columns"] == ["id"]


def test_the_inspector_sees_the_type_classes_and_relations(engine):
    inspector = inspect(engine)
    deals = {column["name"]: column["type"] for column in inspector.get_columns("deals")}
    assert isinstance(deals["created_at"], sqlalchemy.DATETIME)
    assert isinstance(deals["closed_on"], sqlalchemy.DATE)
    assert isinstance(deals["amount"], sqlalchemy.NUMERIC)
    assert (deals["amount"].precision, deals["amount"].scale) == (14, 2)
    companies = {column["name"]: column["type"] for column in inspector.get_columns("companies")}
    assert isinstance(companies["is_partner"], sqlalchemy.BOOLEAN)
    assert isinstance(companies["name"], sqlalchemy.VARCHAR) and companies["name"].length == 120
    assert sorted(inspector.get_table_names()) == sorted(DEMO_TABLES)
    assert inspector.get_view_names() == ["deal_totals_by_month"]
    foreign_keys = inspector.get_foreign_keys("deal_items")
    references = {(fk["constrained_columns"][0], fk["referred_table"]) for fk in foreign_keys}
    assert references == {("deal_id", "deals"), ("product_id", "products")}


def test_sqlalchemy_reads_the_stored_text_back_as_python_values(engine):
    deals = sqlalchemy.Table("deals", sqlalchemy.MetaData(), autoload_with=engine)
    companies = sqlalchemy.Table("companies", sqlalchemy.MetaData(), autoload_with=engine)
    with engine.connect() as connection:
        closed = connection.execute(select(deals).where(deals.c.closed_on.is_not(None)).limit(1)).one()
        company = connection.execute(select(companies).limit(1)).one()
    assert isinstance(closed.created_at, datetime)
    assert isinstance(closed.closed_on, date) and not isinstance(closed.closed_on, datetime)
    assert isinstance(closed.amount, Decimal)
    assert isinstance(company.is_partner, bool)


# --- dates -----------------------------------------------------------------------------------

def test_dates_span_the_two_years_before_today_in_iso_text(db):
    first, last = db.execute("SELECT MIN(created_at), MAX(created_at) FROM deals").fetchone()
    first, last = datetime.fromisoformat(first), datetime.fromisoformat(last)
    assert first >= datetime.combine(TODAY - timedelta(days=731), datetime.min.time())
    assert last < datetime.combine(TODAY, datetime.min.time())
    assert (last - first).days >= 700
    iso_datetime = "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"
    for table in ("companies", "deals"):
        values = [row[0] for row in db.execute(f"SELECT created_at FROM {table}")]
        assert all(re.match(iso_datetime, value) for value in values), table
    closed = [row[0] for row in db.execute("SELECT closed_on FROM deals WHERE closed_on IS NOT NULL")]
    assert all(re.match("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", value) for value in closed)
    assert max(closed) < TODAY.isoformat()


def test_deals_close_after_they_open_and_companies_exist_before_their_deals(db):
    assert scalar(db, "SELECT COUNT(*) FROM deals WHERE closed_on < date(created_at)") == 0
    assert scalar(db, """
        SELECT COUNT(*) FROM deals JOIN companies ON companies.id = deals.company_id
        WHERE deals.created_at < companies.created_at
    """) == 0


def test_nothing_is_in_the_future_with_the_default_today(tmp_path):
    path = create_demo_database(tmp_path / "instance" / "today.db")  # missing folders are created
    with sqlite3.connect(path) as connection:
        newest = connection.execute(
            "SELECT MAX(created_at), MAX(closed_on) FROM deals UNION ALL SELECT MAX(created_at), NULL FROM companies"
        ).fetchall()
    connection.close()
    now = datetime.now()
    for created_at, closed_on in newest:
        assert datetime.fromisoformat(created_at) < now
        assert closed_on is None or date.fromisoformat(closed_on) < date.today()


# --- NULLs -----------------------------------------------------------------------------------

def test_nulls_appear_where_expected(db):
    deal_count = scalar(db, "SELECT COUNT(*) FROM deals")
    unassigned = scalar(db, "SELECT COUNT(*) FROM deals WHERE owner IS NULL")
    assert 0 < unassigned < deal_count * 0.1
    assert scalar(db, "SELECT COUNT(*) FROM deals WHERE stage IN ('WON', 'LOST') AND closed_on IS NULL") == 0
    open_deals = scalar(db, "SELECT COUNT(*) FROM deals WHERE stage NOT IN ('WON', 'LOST')")
    assert open_deals > 0
    assert scalar(db, "SELECT COUNT(*) FROM deals WHERE closed_on IS NULL") == open_deals
    untracked = {row[0] for row in db.execute("SELECT DISTINCT category FROM products WHERE in_stock IS NULL")}
    assert untracked and "Hardware" not in untracked
    for column in ("title", "company_id", "stage", "amount", "currency", "created_at", "probability"):
        assert scalar(db, f"SELECT COUNT(*) FROM deals WHERE {column} IS NULL") == 0, column


# --- the view --------------------------------------------------------------------------------

def test_the_view_totals_deals_by_month_and_stage(db):
    rows = db.execute("SELECT month, stage, deals, amount FROM deal_totals_by_month").fetchall()
    assert all(re.match("^[0-9]{4}-[0-9]{2}$", month) for month, *_ in rows)
    assert {stage for _, stage, _, _ in rows} == ALL_STAGES
    assert 24 <= len({month for month, *_ in rows}) <= 26
    assert sum(count for _, _, count, _ in rows) == scalar(db, "SELECT COUNT(*) FROM deals")
    assert sum(amount for *_, amount in rows) == pytest.approx(scalar(db, "SELECT SUM(amount) FROM deals"))
    month, stage, count, amount = rows[0]
    assert count == scalar(db, f"SELECT COUNT(*) FROM deals WHERE created_at LIKE '{month}-%' AND stage = '{stage}'")


# --- determinism and replacement -------------------------------------------------------------

def test_the_same_seed_and_day_give_the_same_data(tmp_path, demo_path):
    again = create_demo_database(tmp_path / "again.db", today=TODAY)
    assert checksum(again) == checksum(demo_path)


def test_another_seed_or_day_gives_other_data(tmp_path, demo_path):
    other_seed = create_demo_database(tmp_path / "seed.db", seed=25, today=TODAY)
    other_day = create_demo_database(tmp_path / "day.db", today=TODAY + timedelta(days=1))
    assert len({checksum(demo_path), checksum(other_seed), checksum(other_day)}) == 3


def test_regenerating_replaces_the_file_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "demo.db"
    path.write_bytes(b"not a database")
    for suffix in ("-journal", "-wal", "-shm"):
        (tmp_path / f"demo.db{suffix}").write_bytes(b"stale")
    assert create_demo_database(path, seed=1, today=TODAY) == path
    first = checksum(path)
    create_demo_database(path, seed=2, today=TODAY)
    assert checksum(path) != first
    assert [entry.name for entry in tmp_path.iterdir()] == ["demo.db"]


def test_a_failed_generation_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "demo.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE previous (id INTEGER PRIMARY KEY)")
    connection.close()
    before = path.read_bytes()
    write = demo_data._write_database

    def write_then_fail(temp, rows):
        write(temp, rows)
        raise OSError("disk full")

    monkeypatch.setattr(demo_data, "_write_database", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        create_demo_database(path, today=TODAY)
    assert path.read_bytes() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["demo.db"]
