"""SQLite files, opened read-only, only from the directory named in GATEWAY_SQLITE_DIR (the
sandbox's demo database, tests). The "database" is a file name in that directory."""
from __future__ import annotations

import sqlite3
from datetime import date, datetime
from pathlib import Path

import sqlalchemy
from sqlalchemy import String, TypeDecorator, event, func, type_coerce
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from . import Connection, ConnectionFailed, Kind, Limits, failure


class SQLite(Kind):
    name = "sqlite"
    label = "SQLite"
    needs_host = False

    def locate(self, connection: Connection, directory: str | None) -> str:
        """The file's path; only plain names inside the configured directory are accepted."""
        name = connection.database
        if not directory or not name or Path(name).name != name or name.startswith("."):
            raise failure("SQLITE_FILE_MISSING")
        path = Path(directory, name)
        if not path.is_file():
            raise failure("SQLITE_FILE_MISSING")
        return str(path.resolve())

    def create_engine(self, connection: Connection, address: str, limits: Limits) -> Engine:
        engine = sqlalchemy.create_engine(self.url(connection, database=address), poolclass=NullPool,
                                          connect_args={"timeout": limits.connect_timeout})
        event.listen(engine, "connect", _query_only)
        return engine

    def url(self, connection: Connection, database: str | None = None, **parts) -> URL:
        return URL.create("sqlite", database=f"file:{database or connection.database}",
                          query={"mode": "ro", "uri": "true"}, **parts)

    def json_row(self, columns):
        return func.json_array(*[_cell(expression, type_) for expression, type_ in columns])

    def result_types(self, result) -> list[str]:
        """SQLite has no column types in a result: judge by the first rows' values."""
        rows = result.fetchmany(50)
        return [_value_type([row[index] for row in rows]) for index in range(len(result.keys()))]

    def comparable(self, expression, type_: str):
        if type_ in ("date", "datetime"):
            return type_coerce(_cell(expression, type_), IsoText())
        return expression

    def explain(self, exc: BaseException) -> ConnectionFailed:
        original = getattr(exc, "orig", None) or exc
        if isinstance(original, ConnectionFailed):
            return original
        if isinstance(original, sqlite3.OperationalError) and "unable to open" in str(original):
            return failure("SQLITE_FILE_MISSING")
        return failure("QUERY_FAILED")


def _cell(expression, type_: str):
    """SQLite keeps dates as text; normalise them (anything unparsable becomes null)."""
    if type_ == "datetime":
        return func.strftime("%Y-%m-%d %H:%M:%S", expression)
    if type_ == "date":
        return func.date(expression)
    return expression


def _value_type(values: list) -> str:
    present = [value for value in values if value is not None]
    if present and all(isinstance(value, int) for value in present):
        return "int"
    if present and all(isinstance(value, (int, float)) for value in present):
        return "double"
    return "string"


class IsoText(TypeDecorator):
    """Dates compared as SQLite stores them: `YYYY-MM-DD[ HH:MM:SS]` text."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(value, date):
            return value.isoformat()
        return value


def _query_only(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA query_only = ON")
