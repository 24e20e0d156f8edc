"""MySQL and MariaDB through PyMySQL: the checked IP address is what PyMySQL connects to, and
every new session is made read-only with a statement time limit (MariaDB and MySQL name that
limit differently)."""
from __future__ import annotations

import ssl

import sqlalchemy
from pymysql.constants import FIELD_TYPE
from sqlalchemy import event, func
from sqlalchemy.engine import URL, Engine

from . import Connection, ConnectionFailed, Kind, Limits, failure, pool_options

# PyMySQL error numbers (first argument of its OperationalError).
ACCESS_DENIED = {1044, 1045, 1698}
UNKNOWN_DATABASE = 1049
CANNOT_CONNECT = {2003, 2005, 2006, 2013}
NO_TABLE_ACCESS = {1142, 1143}
STATEMENT_TIMEOUT = {1969, 3024}
RESULT_TYPES = {
    **dict.fromkeys((FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.LONG, FIELD_TYPE.LONGLONG, FIELD_TYPE.INT24,
                     FIELD_TYPE.YEAR), "int"),
    **dict.fromkeys((FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.FLOAT, FIELD_TYPE.DOUBLE), "double"),
    **dict.fromkeys((FIELD_TYPE.DATE, FIELD_TYPE.NEWDATE), "date"),
    **dict.fromkeys((FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP), "datetime"),
}


class MySQL(Kind):
    name = "mysql"
    label = "MySQL / MariaDB"
    default_port = 3306
    source_code = "mysql"
    tls_modes = ("prefer", "require", "verify-ca", "disable")
    default_schema = None  # the database itself

    def create_engine(self, connection: Connection, address: str, limits: Limits) -> Engine:
        connect_args = {
            "connect_timeout": max(1, int(limits.connect_timeout)),
            "read_timeout": int(limits.statement_timeout) + 5,
            "charset": "utf8mb4",
        }
        tls = _tls_context(connection.tls_mode or "prefer")
        if tls is not None:
            connect_args["ssl"] = tls
        engine = sqlalchemy.create_engine(
            self.url(connection, host=address), connect_args=connect_args,
            **pool_options(limits),
        )
        event.listen(engine, "connect", _read_only_session(limits.statement_timeout,
                                                           require_tls=connection.tls_mode in ("require", "verify-ca")))
        return engine

    def url(self, connection: Connection, host: str | None = None, **parts) -> URL:
        return URL.create(
            "mysql+pymysql", username=connection.user or None, password=connection.password or None,
            host=host or connection.host, port=connection.port or self.default_port,
            database=connection.database, **parts,
        )

    def json_row(self, columns):
        return func.json_array(*[_cell(expression, type_) for expression, type_ in columns])

    def result_types(self, result) -> list[str]:
        return [RESULT_TYPES.get(entry[1], "string") for entry in result.cursor.description]

    def explain(self, exc: BaseException) -> ConnectionFailed:
        original = getattr(exc, "orig", None) or exc
        number = original.args[0] if getattr(original, "args", None) else None
        if number in ACCESS_DENIED:
            return failure("AUTH_FAILED")
        if number == UNKNOWN_DATABASE:
            return failure("DATABASE_NOT_FOUND")
        if number in NO_TABLE_ACCESS:
            return failure("PERMISSION_DENIED")
        if number in STATEMENT_TIMEOUT:
            return failure("TIMEOUT")
        if isinstance(original, ssl.SSLError) or "ssl" in str(original).lower():
            return failure("TLS_FAILED")
        if number in CANNOT_CONNECT or isinstance(original, (OSError, TimeoutError)):
            return failure("HOST_UNREACHABLE")
        return failure("QUERY_FAILED")


def _cell(expression, type_: str):
    if type_ == "datetime":
        return func.date_format(expression, "%Y-%m-%d %H:%i:%s")
    if type_ == "date":
        return func.date_format(expression, "%Y-%m-%d")
    return expression


def _tls_context(mode: str) -> ssl.SSLContext | dict | None:
    """`verify-ca` checks the certificate chain but not the name: we connect to the checked IP
    address, not to the name (PyMySQL would verify the name against that address)."""
    if mode == "disable":
        return None
    context = ssl.create_default_context()
    context.check_hostname = False
    if mode != "verify-ca":
        context.verify_mode = ssl.CERT_NONE
    return context


def _read_only_session(statement_timeout: float, require_tls: bool):
    def configure(dbapi_connection, _record) -> None:
        if require_tls and not _uses_tls(dbapi_connection):
            dbapi_connection.close()
            raise ssl.SSLError("the server does not offer TLS")
        mariadb = "mariadb" in dbapi_connection.get_server_info().lower()
        limit = (f"SET SESSION max_statement_time = {float(statement_timeout)}" if mariadb
                 else f"SET SESSION max_execution_time = {int(statement_timeout * 1000)}")
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
            cursor.execute(limit)
        dbapi_connection.commit()

    return configure


def _uses_tls(dbapi_connection) -> bool:
    """PyMySQL silently skips TLS when the server does not offer it; `require` must not."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        row = cursor.fetchone()
    return bool(row and row[1])
