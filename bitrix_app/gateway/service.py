"""The gateway's four endpoints as plain Python: authenticate the caller, then answer `check`,
`table list`, `table description` and `data` from the database entry the call names
(reference section 6). The blueprint in `bitrix_app/connector.py` only translates HTTP.

Who may call: the URL's opaque key names the portal; `connection[source_key]` names one of its
database entries and `connection[secret]` proves the caller is the Bitrix24 source we created
(compared in constant time with a stored SHA-256; the secret is 256 random bits, so a fast hash
is enough). Nothing touches a customer database before both checks pass.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from ..models import Database, Portal, PortalStatus
from ..services.crypto import TokenCipher
from .addresses import AddressRefused, resolve_checked
from .cache import CatalogCache
from .catalog import (Column, Exposure, SavedQuery, TableRef, describe_table, list_tables, saved_query_text,
                      selectable)
from .engines import Engines
from .filters import FilterColumn, FilterError, translate
from .kinds import KINDS, Connection, ConnectionFailed, Kind
from .settings import GatewaySettings

log = logging.getLogger(__name__)

SOURCE_KEY_SETTING = "source_key"
SECRET_SETTING = "secret"
FETCH_ROWS = 2000
_DUMMY_HASH = hashlib.sha256(b"no such source").hexdigest()


class GatewayError(Exception):
    """An answer other than 200: Bitrix24 treats any such status as a failure (reference 6.4)."""

    def __init__(self, status: int, code: str, message: str):
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")

    def to_dict(self) -> dict:
        return {"error": self.code, "error_description": self.message}


@dataclass(frozen=True)
class Caller:
    portal: Portal
    database: Database


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Gateway:
    def __init__(self, settings: GatewaySettings, session_factory: sessionmaker, cipher: TokenCipher):
        self.settings = settings
        self.session_factory = session_factory
        self.cipher = cipher
        self.engines = Engines()
        self.cache = CatalogCache(settings.cache_seconds, settings.redis_url)

    # --- connection details, stored encrypted -----------------------------------------------

    def seal(self, connection: Connection) -> str:
        return self.cipher.encrypt(json.dumps(connection.__dict__))

    def connection_of(self, database: Database) -> Connection:
        return Connection(**json.loads(self.cipher.decrypt(database.connection_encrypted)))

    def kind(self, name: str) -> Kind:
        if name not in self.settings.kinds:
            raise GatewayError(400, "KIND_NOT_ENABLED", f"The database kind {name!r} is not enabled on this app.")
        return KINDS[name]

    def target(self, kind: Kind, connection: Connection) -> str:
        """The address to connect to, checked once (no second DNS lookup at connect time)."""
        if not kind.needs_host:
            return kind.locate(connection, self.settings.sqlite_dir)
        return resolve_checked(connection.host, connection.port or kind.default_port,
                               self.settings.allowed_networks)

    def probe(self, kind_name: str, connection: Connection, saved_queries: list[dict] = ()) -> None:
        """Connect once with a throwaway engine and run each saved query far enough to see it
        work; raises ConnectionFailed or AddressRefused."""
        kind = self.kind(kind_name)
        engine = kind.create_engine(connection, self.target(kind, connection), self.settings.limits)
        try:
            with engine.connect() as db:
                db.execute(select(1))
                for query in saved_queries:
                    _try_saved_query(db, kind, query)
        except ConnectionFailed:
            raise
        except Exception as exc:  # every driver error becomes our own sentence
            raise kind.explain(exc) from None
        finally:
            engine.dispose()

    def engine(self, database: Database):
        kind = self.kind(database.kind)
        connection = self.connection_of(database)
        return self.engines.get(database.source_key, database.version,
                                lambda: kind.create_engine(connection, self.target(kind, connection),
                                                           self.settings.limits))

    def forget(self, database: Database) -> None:
        self.engines.dispose(database.source_key)

    # --- authentication ---------------------------------------------------------------------

    def authenticate(self, portal_key: str, values: dict) -> Caller:
        connection = values.get("connection") if isinstance(values.get("connection"), dict) else {}
        source_key = connection.get(SOURCE_KEY_SETTING)
        secret = connection.get(SECRET_SETTING)
        with self.session_factory() as session:
            portal = session.scalar(select(Portal).where(Portal.gateway_key == portal_key)) \
                if portal_key else None
            if portal is None:
                raise GatewayError(404, "GATEWAY_NOT_FOUND", "This connector address is not known to the app.")
            if portal.status == PortalStatus.UNINSTALLED:
                raise GatewayError(403, "PORTAL_UNINSTALLED",
                                   "The app is no longer installed on this portal; its sources are switched off.")
            database = None
            if isinstance(source_key, str) and source_key:
                database = session.scalar(select(Database).where(
                    Database.portal_id == portal.id, Database.source_key == source_key))
        if not _secret_matches(database, secret):
            raise GatewayError(401, "INVALID_SOURCE_CREDENTIALS",
                               "The source's key or secret is wrong. Re-save the database in the app's tab "
                               "to give Bitrix24 fresh credentials.")
        return Caller(portal, database)

    # --- the four endpoints -----------------------------------------------------------------

    def check(self, caller: Caller) -> dict:
        database = caller.database
        with self._connected(database) as connection:
            connection.execute(select(1))
        return {"status": "ok", "database": database.title}

    def table_list(self, caller: Caller, search: str = "") -> list[dict]:
        needle = (search or "").strip().casefold()
        return [ref.to_list_entry() for ref in self._tables(caller.database)
                if not needle or needle in ref.title.casefold() or needle in ref.code]

    def describe(self, caller: Caller, external_code) -> list[dict]:
        ref = self._table(caller.database, external_code)
        return [column.to_description() for column in self._columns(caller.database, ref)]

    def data(self, caller: Caller, values: dict) -> Iterator[bytes]:
        """The rows as one JSON array of arrays. The query runs and its first rows arrive before
        this returns, so a failure to start is a clean error; see `stream_rows` for later ones."""
        database = caller.database
        kind = self.kind(database.kind)
        ref = self._table(database, values.get("table"))
        columns = self._columns(database, ref)
        source = selectable(ref, columns)
        chosen, header = _selection(columns, values.get("select"), _name_map(values.get("mapFields"), columns))
        where = self._where(kind, source, columns, values, caller.portal.date_format)
        row = kind.json_row([(source.c[column.name], column.type) for column in chosen])
        statement = select(row).select_from(source).limit(self._limit(values.get("limit")))
        if where is not None:
            statement = statement.where(where)
        return self._start_stream(database, kind, statement, header)

    # --- helpers ----------------------------------------------------------------------------

    def _connected(self, database: Database):
        kind = self.kind(database.kind)
        try:
            return _Guarded(self.engine(database).connect(), kind)
        except (ConnectionFailed, AddressRefused) as exc:
            raise _database_error(exc) from None
        except Exception as exc:
            raise _database_error(kind.explain(exc)) from None

    def _tables(self, database: Database) -> list[TableRef]:
        kind = self.kind(database.kind)
        return self._cached(f"tables:{database.source_key}:{database.version}", TableRef, lambda connection:
                            list_tables(connection, exposure_of(database), f"db{database.id}", kind.default_schema),
                            database)

    def _table(self, database: Database, external_code) -> TableRef:
        if not isinstance(external_code, str) or not external_code:
            raise GatewayError(400, "TABLE_REQUIRED", "The request does not name a table.")
        for ref in self._tables(database):
            if ref.external_code == external_code:
                return ref
        raise GatewayError(404, "TABLE_NOT_FOUND",
                           "This table is not exposed by the database entry (renamed, removed, or not chosen).")

    def _columns(self, database: Database, ref: TableRef) -> list[Column]:
        kind = self.kind(database.kind)
        columns = self._cached(f"columns:{database.source_key}:{database.version}:{ref.external_code}", Column,
                               lambda connection: describe_table(connection, ref, kind.result_types), database)
        if not columns:
            raise GatewayError(502, "NO_COLUMNS", "The table has no columns the gateway can read.")
        return columns

    def _cached(self, key: str, item_type, load, database: Database) -> list:
        """Table lists and descriptions: from the cache, or loaded over one connection."""
        cached = self.cache.get(key)
        if cached is not None:
            return [item_type(**item) for item in cached]
        with self._connected(database) as connection:
            items = load(connection)
        if items:
            self.cache.set(key, [item.to_dict() for item in items])
        return items

    def _where(self, kind: Kind, source, columns: list[Column], values: dict, date_format: str | None):
        filter_ = values.get("filter")
        if filter_ in (None, "", {}, []):
            return None
        names = _name_map(values.get("mapFields"), columns)
        by_code = {column.code: column for column in columns}
        allowed = {}
        for name in {*by_code, *names}:
            column = by_code[names.get(name, name)]
            allowed[name] = FilterColumn(kind.comparable(source.c[column.name], column.type), column.type)
        try:
            return translate(filter_, allowed, date_format)
        except FilterError as exc:
            raise GatewayError(400, exc.code, exc.message) from None

    def _limit(self, raw) -> int:
        if raw in (None, ""):
            return self.settings.max_rows
        try:
            limit = int(str(raw).strip())
        except ValueError:
            raise GatewayError(400, "INVALID_LIMIT", "limit must be a whole number.") from None
        return self.settings.max_rows if limit <= 0 else min(limit, self.settings.max_rows)

    def _start_stream(self, database: Database, kind: Kind, statement, header: list[str]) -> Iterator[bytes]:
        guarded = self._connected(database)
        chunks = kind.row_chunks(guarded.connection, statement, FETCH_ROWS)
        try:
            first = next(chunks, None)
        except Exception as exc:
            guarded.connection.invalidate()
            guarded.connection.close()
            raise _database_error(kind.explain(exc)) from None
        return stream_rows(header, first, chunks, guarded.connection, database.id)


def _try_saved_query(connection, kind: Kind, query: dict) -> None:
    try:
        result = connection.execution_options(stream_results=True).execute(saved_query_text(query["sql"]))
        result.fetchmany(1)
        result.close()
    except Exception as exc:
        connection.rollback()
        reason = kind.explain(exc)
        raise ConnectionFailed(reason.code, f"The saved query {query['title']!r} failed: {reason.message}") from None


class _Guarded:
    """A connection used in `with`: driver errors become GatewayErrors with our own sentences."""

    def __init__(self, connection, kind: Kind):
        self.connection = connection
        self.kind = kind

    def __enter__(self):
        return self.connection

    def __exit__(self, exc_type, exc, _traceback):
        self.connection.close()
        if exc is not None and not isinstance(exc, GatewayError):
            raise _database_error(self.kind.explain(exc)) from None
        return False


def stream_rows(header: list[str], first: bytes | None, chunks: Iterator[bytes], connection,
                database_id: int) -> Iterator[bytes]:
    """`[[header...],[row...],...]`, written as the rows arrive. A failure after the first rows
    cannot change the status any more: the body is then left as invalid JSON and the connection
    is dropped, so it can never pass for a complete answer."""
    complete = False
    try:
        yield b"[" + json.dumps(header, ensure_ascii=False).encode()
        chunk = first
        while chunk is not None:
            yield b"," + chunk
            chunk = next(chunks, None)
        yield b"]"
        complete = True
    except GeneratorExit:
        raise
    except Exception:
        log.exception("Data stream of database %s failed mid-way", database_id)
        yield b"\n#STREAM FAILED"
        raise
    finally:
        chunks.close()
        if not complete:  # a half-read cursor or COPY: the connection cannot go back to the pool
            connection.invalidate()
        connection.close()


def _selection(columns: list[Column], select_, names: dict[str, str]) -> tuple[list[Column], list[str]]:
    """`select` holds BI names; the header repeats them in order (reference 6.10)."""
    wanted = list(select_.values()) if isinstance(select_, dict) else select_ if isinstance(select_, list) else []
    if not wanted:
        return columns, [column.code for column in columns]
    by_code = {column.code: column for column in columns}
    chosen = []
    for name in wanted:
        code = names.get(name, name) if isinstance(name, str) else None
        if code not in by_code:
            raise GatewayError(400, "UNKNOWN_COLUMN", f"select names a column this table does not have: {name!r}.")
        chosen.append(by_code[code])
    return chosen, [str(name) for name in wanted]


def _name_map(map_fields, columns: list[Column]) -> dict[str, str]:
    """BI name -> our code, from `mapFields` (our code -> BI name), for columns a user renamed."""
    codes = {column.code for column in columns}
    if not isinstance(map_fields, dict):
        return {}
    return {name: code for code, name in map_fields.items() if code in codes and isinstance(name, str) and name}


def _secret_matches(database: Database | None, secret) -> bool:
    presented = hash_secret(secret) if isinstance(secret, str) and secret else _DUMMY_HASH
    stored = database.secret_hash if database is not None else _DUMMY_HASH
    matches = hmac.compare_digest(presented, stored)
    pending = database.pending_secret_hash if database is not None else None
    if pending:
        matches = hmac.compare_digest(presented, pending) or matches
    return matches and database is not None and isinstance(secret, str) and bool(secret)


def _database_error(exc) -> GatewayError:
    if isinstance(exc, AddressRefused):
        return GatewayError(502, exc.code, exc.message)
    if exc.code == "TIMEOUT":
        return GatewayError(504, exc.code, exc.message)
    return GatewayError(502, exc.code, exc.message)


def exposure_of(database: Database) -> Exposure:
    return Exposure(
        schema=database.schema_name or None,
        tables=tuple(database.tables or ()),
        saved_queries=tuple(SavedQuery(item["code"], item["title"], item["sql"])
                            for item in database.saved_queries or ()),
    )
