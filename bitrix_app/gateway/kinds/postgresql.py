"""PostgreSQL through psycopg 3: read-only sessions and a statement timeout set at connect,
the checked address pinned with `hostaddr` (the host name still serves TLS verification)."""
from __future__ import annotations

import sqlalchemy
from sqlalchemy import Integer, Numeric, Text, cast, func, literal
from sqlalchemy.engine import URL, Engine

from . import Connection, ConnectionFailed, Kind, Limits, failure, pool_options

APPLICATION_NAME = "bitrix24-bi-gateway"
MAX_ARGUMENTS = 90
RESULT_TYPES = {"int2": "int", "int4": "int", "int8": "int", "oid": "int", "bool": "int", "numeric": "double",
                "float4": "double", "float8": "double", "money": "money", "date": "date",
                "timestamp": "datetime", "timestamptz": "datetime"}


class PostgreSQL(Kind):
    name = "postgresql"
    label = "PostgreSQL"
    default_port = 5432
    source_code = "pgsql"
    tls_modes = ("prefer", "require", "verify-full", "disable")
    default_schema = "public"

    def create_engine(self, connection: Connection, address: str, limits: Limits) -> Engine:
        timeout_ms = int(limits.statement_timeout * 1000)
        query = {
            "hostaddr": address,
            "sslmode": connection.tls_mode or "prefer",
            "connect_timeout": str(max(1, int(limits.connect_timeout))),
            "application_name": APPLICATION_NAME,
            "options": f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms} "
                       "-c DateStyle=ISO,MDY -c extra_float_digits=1",
        }
        return sqlalchemy.create_engine(
            self.url(connection, query=query),
            **pool_options(limits),
        )

    def url(self, connection: Connection, **parts) -> URL:
        return URL.create(
            "postgresql+psycopg", username=connection.user or None, password=connection.password or None,
            host=connection.host, port=connection.port or self.default_port, database=connection.database,
            **parts,
        )

    def comparable(self, expression, type_: str):
        return cast(expression, Numeric) if type_ == "money" else expression

    def json_row(self, columns):
        """`'[' || concat_ws(',', cells) || ']'`: about 1.5 times cheaper for the server than
        json_build_array with to_char (bench/results.md)."""
        cells = [func.coalesce(_cell(expression, type_), literal("null")) for expression, type_ in columns]
        while len(cells) > MAX_ARGUMENTS:  # PostgreSQL functions take at most 100 arguments
            cells = [func.concat_ws(",", *cells[start:start + MAX_ARGUMENTS])
                     for start in range(0, len(cells), MAX_ARGUMENTS)]
        return literal("[") + func.concat_ws(",", *cells) + literal("]")

    def row_chunks(self, connection, statement, rows_per_chunk: int):
        """Through COPY ... TO STDOUT: the server streams rows without waiting for FETCHes.
        psycopg binds the parameters client-side for COPY; COPY's text format escapes only the
        backslash in JSON text (which has no raw tabs or newlines), so one replace undoes it."""
        compiled = statement.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY ({compiled.string}) TO STDOUT", compiled.params) as copy:
            rows = []
            for row in copy:
                rows.append(row)
                if len(rows) >= rows_per_chunk:
                    yield _copy_chunk(rows)
                    rows = []
            if rows:
                yield _copy_chunk(rows)

    def result_types(self, result) -> list[str]:
        import psycopg

        names = []
        for entry in result.cursor.description:
            info = psycopg.adapters.types.get(entry.type_code)
            names.append(RESULT_TYPES.get(info.name if info else "", "string"))
        return names

    def explain(self, exc: BaseException) -> ConnectionFailed:
        text = str(getattr(exc, "orig", None) or exc).lower()
        sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
        if sqlstate == "28P01" or "password authentication failed" in text or "no password supplied" in text:
            return failure("AUTH_FAILED")
        if sqlstate == "28000" and "pg_hba" in text:
            return failure("AUTH_FAILED")
        if sqlstate == "3D000" or ("database" in text and "does not exist" in text):
            return failure("DATABASE_NOT_FOUND")
        if sqlstate == "42501":
            return failure("PERMISSION_DENIED")
        if sqlstate == "57014" or "timeout expired" in text or "statement timeout" in text:
            return failure("TIMEOUT")
        if "ssl" in text or "certificate" in text:
            return failure("TLS_FAILED")
        if "connection refused" in text or "could not connect" in text or "connection failed" in text \
                or "no route" in text or "connection to server" in text:
            return failure("HOST_UNREACHABLE")
        return failure("QUERY_FAILED")


def _copy_chunk(rows: list) -> bytes:
    return b"".join(rows)[:-1].replace(b"\\\\", b"\\").replace(b"\n", b",")


def _cell(expression, type_: str):
    """Each cell as JSON text (sessions run with DateStyle=ISO, so dates print as YYYY-MM-DD)."""
    if type_ == "datetime":
        return literal('"') + func.left(cast(expression, Text), 19) + literal('"')
    if type_ == "date":
        return literal('"') + cast(expression, Text) + literal('"')
    if type_ == "money":
        return cast(cast(expression, Numeric), Text)
    if type_ == "string":
        return cast(func.to_json(cast(expression, Text)), Text)
    if isinstance(getattr(expression, "type", None), sqlalchemy.Boolean):
        return cast(cast(expression, Integer), Text)
    if isinstance(getattr(expression, "type", None), sqlalchemy.Float):
        return cast(func.to_json(expression), Text)  # NaN and Infinity become JSON strings
    return cast(expression, Text)
