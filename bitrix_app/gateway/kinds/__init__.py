"""Database kinds the gateway serves. A kind is one small module: how to build an engine for a
checked address, how to make a session read-only with a statement timeout, how to render one
row as a JSON array inside the database, and how to explain its driver's connection errors.

`KINDS` maps the kind's name (`GATEWAY_KINDS`, a database's `kind`) to its instance.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from sqlalchemy.engine import URL, Engine
from sqlalchemy.sql.elements import ColumnElement


@dataclass(frozen=True)
class Connection:
    """What an administrator typed, decrypted. Never logged: `repr` hides the password."""

    host: str = ""
    port: int | None = None
    database: str = ""
    user: str = ""
    password: str = field(default="", repr=False)
    tls_mode: str = ""


@dataclass(frozen=True)
class Limits:
    connect_timeout: float = 5.0
    statement_timeout: float = 50.0
    pool_size: int = 2


class ConnectionFailed(Exception):
    """A database could not be reached or refused us; `code` and `message` say which, in words
    an administrator can act on. Never carries the driver's own text (it may echo secrets)."""

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class Kind:
    name = ""
    label = ""
    default_port: int | None = None
    source_code: str | None = None  # connector.sourceCode: hides Bitrix24's own hint tile
    tls_modes: tuple[str, ...] = ()
    default_schema: str | None = None
    needs_host = True

    def create_engine(self, connection: Connection, address: str, limits: Limits) -> Engine:
        raise NotImplementedError

    def json_row(self, columns: list[tuple[ColumnElement, str]]) -> ColumnElement:
        """One text value per row: a JSON array of the cells, formatted as reference 6.10 says."""
        raise NotImplementedError

    def row_chunks(self, connection, statement, rows_per_chunk: int) -> Iterator[bytes]:
        """Run a statement selecting `json_row` values; yield `row,row,...` byte chunks as the rows
        arrive from a server-side cursor, so memory does not grow with the table."""
        result = connection.execution_options(stream_results=True, max_row_buffer=rows_per_chunk).execute(statement)
        try:
            while rows := result.fetchmany(rows_per_chunk):
                yield ",".join(row[0] for row in rows).encode()
        finally:
            result.close()

    def explain(self, exc: BaseException) -> ConnectionFailed:
        raise NotImplementedError

    def result_types(self, result) -> list[str]:
        """Bitrix types of a saved query's columns, from the driver's cursor description."""
        raise NotImplementedError

    def comparable(self, expression: ColumnElement, type_: str) -> ColumnElement:
        """The expression filters compare with bound Python values (date, datetime, Decimal...)."""
        return expression

    def url(self, connection: Connection, **parts) -> URL:
        raise NotImplementedError


def pool_options(limits: Limits) -> dict:
    """Small, capped pools; connections checked before use and recycled every five minutes."""
    return {"pool_size": limits.pool_size, "max_overflow": limits.pool_size, "pool_timeout": limits.connect_timeout,
            "pool_recycle": 300, "pool_pre_ping": True}


def failure(code: str) -> ConnectionFailed:
    return ConnectionFailed(code, CONNECTION_MESSAGES[code])


CONNECTION_MESSAGES = {
    "AUTH_FAILED": "The database refused the user name or password.",
    "DATABASE_NOT_FOUND": "The database server is reachable, but the database does not exist.",
    "HOST_UNREACHABLE": "The database server did not answer: check the host and port, and that it accepts "
                        "connections from the app's server.",
    "TIMEOUT": "The database server did not answer in time.",
    "TLS_FAILED": "The TLS connection to the database failed: check the TLS mode and the server's certificate.",
    "PERMISSION_DENIED": "The database user may not read this table or schema.",
    "QUERY_FAILED": "The database could not run the query.",
    "SQLITE_FILE_MISSING": "No SQLite file with this name exists in GATEWAY_SQLITE_DIR.",
}


def _registry() -> dict[str, Kind]:
    from .mysql import MySQL
    from .postgresql import PostgreSQL
    from .sqlite import SQLite

    return {kind.name: kind for kind in (PostgreSQL(), MySQL(), SQLite())}


KINDS: dict[str, Kind] = _registry()
