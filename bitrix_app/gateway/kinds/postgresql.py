"""PostgreSQL through psycopg 3: read-only sessions and a statement timeout set at connect,
the checked address pinned with `hostaddr` (the host name still serves TLS verification)."""
from __future__ import annotations

import sqlalchemy
from sqlalchemy import Integer, Numeric, String, cast, func
from sqlalchemy.engine import URL, Engine

from . import Connection, ConnectionFailed, Kind, Limits, failure, pool_options

APPLICATION_NAME = "bitrix24-bi-gateway"
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
            "options": f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms}",
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
        return cast(func.json_build_array(*[_cell(expression, type_) for expression, type_ in columns]), String)

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


def _cell(expression, type_: str):
    """PostgreSQL's JSON renders timestamps with a `T`, money as text and booleans as true/false:
    convert those to the formats BI Builder expects (NaN and Infinity arrive as JSON strings)."""
    if type_ == "datetime":
        return func.to_char(expression, "YYYY-MM-DD HH24:MI:SS")
    if type_ == "date":
        return func.to_char(expression, "YYYY-MM-DD")
    if type_ == "money":
        return cast(expression, Numeric)
    if isinstance(getattr(expression, "type", None), sqlalchemy.Boolean):
        return cast(expression, Integer)
    return expression
