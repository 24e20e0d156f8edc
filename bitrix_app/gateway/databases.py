"""Database entries as an administrator manages them (the tab's "Databases", `/api/databases`,
`flask --app app databases ...`): add, edit, test and delete, each kept in step with its
Bitrix24 source.

Adding tests the connection first, stores the entry (credentials encrypted), then creates the
source with `biconnector.source.add`, whose settings are only the entry's source key and a fresh
secret; Bitrix24 checks them against our `check` endpoint before it saves anything. Passwords are
write-only: nothing here returns one.

Every write is recorded in the change history of the entry's Bitrix24 source (services/history.py)
with the entry's own field names under "database." (the password only as "***"). Those entries
are not revertible through the source (the entry, not Bitrix24, holds the values). An edit that
sends `ifVersion` (the `version` an entry is shown with) is refused with EditConflict once the
entry changed since.
"""
from __future__ import annotations

import secrets
from dataclasses import replace

from sqlalchemy import select

from ..models import Database
from ..services.bitrix import Bitrix
from ..services.errors import BitrixError, Rejected
from ..services.history import MASK, SOURCE, Actor, EditConflict, History, checked_version
from ..services.plans import FieldChange, Target, Update
from ..services.session_tokens import TabSession
from ..services.tab import InvalidFields, TabService, parse_id
from ..services.tokens import portal_by_member_id
from ..services.validation import FieldError
from .addresses import AddressRefused
from .catalog import check_saved_query, saved_query_code
from .connectors import connector_id_for, forget_connector
from .kinds import KINDS, Connection, ConnectionFailed
from .service import SECRET_SETTING, SOURCE_KEY_SETTING, Caller, Gateway, GatewayError, hash_secret, new_secret

CONNECTION_FIELDS = ("host", "port", "database", "user", "password", "tlsMode")
MAX_SAVED_QUERIES = 50
MAX_TABLES = 1000
HISTORY_PREFIX = "database."


class DatabaseService:
    def __init__(self, bitrix: Bitrix, gateway: Gateway, session: TabSession, actor: Actor | None = None):
        """`actor`: who the history names for changes (default: the session's user, via "api")."""
        self.bitrix = bitrix
        self.gateway = gateway
        self.session = session
        self.tab = TabService(bitrix, session, actor)
        self.lang = session.lang

    # --- reading ----------------------------------------------------------------------------

    def list(self) -> list[dict]:
        with self.bitrix.session_factory() as db:
            portal = self._portal(db)
            rows = list(db.scalars(select(Database).where(Database.portal_id == portal.id).order_by(Database.id)))
        last = self._history.last_changes(SOURCE, [row.source_id for row in rows if row.source_id])
        return [self.present(row, last.get(row.source_id)) for row in rows]

    def get(self, raw_id) -> dict:
        with self.bitrix.session_factory() as db:
            row = self._row(db, raw_id)
        return self.present(row, self._history.latest(SOURCE, row.source_id) if row.source_id else None)

    def present(self, row: Database, last_change: dict | None = None) -> dict:
        """`version` is what an edit sends back as `ifVersion`; `lastChange` is the newest entry
        of the source's change history."""
        connection = self.gateway.connection_of(row)
        return {
            "id": row.id, "title": row.title, "description": row.description, "kind": row.kind,
            "host": connection.host, "port": connection.port, "database": connection.database,
            "user": connection.user, "passwordSet": bool(connection.password), "tlsMode": connection.tls_mode,
            "schema": row.schema_name or "", "tables": list(row.tables or []),
            "savedQueries": [dict(item) for item in row.saved_queries or []],
            "sourceId": row.source_id, "connectorId": row.connector_id,
            "createdAt": row.created_at.isoformat(), "updatedAt": row.updated_at.isoformat(),
            "version": str(row.version), "lastChange": last_change,
        }

    # --- changing ---------------------------------------------------------------------------

    def add(self, fields) -> dict:
        self.tab.require_editor()
        values = validate(fields, self.gateway.settings.kinds, current=None)
        self._probe(values)
        secret = new_secret()
        row = self._insert(values, hash_secret(secret))
        try:
            connector_id, source_id = self._create_source(row, secret)
        except BaseException:
            self._delete_row(row.id)
            raise
        with self.bitrix.session_factory() as db, db.begin():
            stored = db.get(Database, row.id)
            stored.source_id, stored.connector_id = source_id, connector_id
        self._record(source_id, diff(_empty(values), values), action="create")
        return {"id": row.id, "sourceId": source_id, "connectorId": connector_id, "item": self.get(row.id)}

    def update(self, raw_id, fields) -> dict:
        """With `fields.ifVersion`, an entry changed since that version is an EditConflict."""
        self.tab.require_editor()
        if_version = checked_version(fields.get("ifVersion") if isinstance(fields, dict) else None, self.lang)
        row, values, changes = self.changes(raw_id, fields)
        if if_version is not None and if_version != str(row.version):
            raise EditConflict({"lastChange": self._history.latest(SOURCE, row.source_id) if row.source_id else None,
                                "fields": [{"field": name, "yours": after, "theirs": before}
                                           for name, before, after in changes],
                                "current": self.get(row.id)}, self.lang)
        changed = [change[0] for change in changes]
        if {"host", "port", "database", "user", "password", "tlsMode", "schema", "savedQueries"} & set(changed):
            self._probe(values)
        if changed:
            self._save(row.id, values)
        rotate = isinstance(fields, dict) and fields.get("rotateSecret") is True
        if (set(changed) & {"title", "description"} or rotate) and row.source_id:
            try:
                self._update_source(row.id, values, rotate=rotate)
            except BitrixError as exc:
                if exc.code != "SOURCE_NOT_FOUND":
                    raise
                self._recreate_source(row.id)  # deleted in Bitrix24's Analytics hub: create it again
                changed.append("source")
            if rotate:
                changed.append("secret")
        if changed:
            self._record(self._source_id(row.id), changes, rotated=rotate)
        return {"item": self.get(row.id), "changed": changed}

    def changes(self, raw_id, fields) -> tuple[Database, dict, list[tuple[str, object, object]]]:
        """What `fields` would change: (API field, before, after), the password masked."""
        with self.bitrix.session_factory() as db:
            row = self._row(db, raw_id)
        current = {"connection": self.gateway.connection_of(row), "title": row.title,
                   "description": row.description, "kind": row.kind, "schema": row.schema_name,
                   "tables": row.tables, "saved_queries": row.saved_queries}
        values = validate(fields, self.gateway.settings.kinds, current=current)
        return row, values, diff(current, values)

    def check(self, raw_id) -> dict:
        """What Bitrix24 would see from `check`, plus how many tables the entry exposes."""
        self.tab.require_editor()
        with self.bitrix.session_factory() as db:
            row = self._row(db, raw_id)
        try:
            self.gateway.probe(row.kind, self.gateway.connection_of(row), row.saved_queries or [])
            tables = self.gateway.table_list(Caller(portal=None, database=row), "")
        except (ConnectionFailed, AddressRefused) as exc:
            return {"ok": False, "code": exc.code, "message": exc.message}
        except GatewayError as exc:
            return {"ok": False, "code": exc.code, "message": exc.message}
        return {"ok": True, "tables": len(tables)}

    def delete(self, raw_id) -> dict:
        self.tab.require_editor()
        with self.bitrix.session_factory() as db:
            row = self._row(db, raw_id)
        if row.source_id:
            try:
                self.bitrix.biconnector(self.session.member_id).delete_source(row.source_id)
            except BitrixError as exc:
                if exc.code != "SOURCE_NOT_FOUND":  # already deleted in Bitrix24: nothing to undo
                    raise
        self._delete_row(row.id)
        if row.source_id:
            self._record(row.source_id, [], action="delete")
        return {"id": row.id, "deleted": True}

    # --- history ----------------------------------------------------------------------------

    @property
    def _history(self) -> History:
        return self.tab.history

    def _record(self, source_id: int | None, changes: list[tuple[str, object, object]], action: str = "update",
                rotated: bool = False) -> None:
        entries = [_history_change(name, before, after) for name, before, after in changes]
        if rotated:
            entries.append({"field": f"settings.{SECRET_SETTING}", "old": MASK, "new": MASK, "secret": True})
        if source_id:
            self.tab.record(SOURCE, source_id, entries, action=action)

    def _source_id(self, database_id: int) -> int | None:
        with self.bitrix.session_factory() as db:
            row = db.get(Database, database_id)
            return row.source_id if row is not None else None

    # --- steps ------------------------------------------------------------------------------

    def _probe(self, values: dict) -> None:
        try:
            self.gateway.probe(values["kind"], values["connection"], values["saved_queries"])
        except (ConnectionFailed, AddressRefused) as exc:
            raise Rejected(422, exc.code, exc.message) from None

    def _insert(self, values: dict, secret_hash: str) -> Database:
        with self.bitrix.session_factory() as db, db.begin():
            portal = self._portal(db)
            row = Database(portal_id=portal.id, source_key=secrets.token_urlsafe(18), secret_hash=secret_hash,
                           connection_encrypted=self.gateway.seal(values["connection"]),
                           **_columns(values))
            db.add(row)
        return row

    def _save(self, database_id: int, values: dict) -> None:
        with self.bitrix.session_factory() as db, db.begin():
            row = db.get(Database, database_id)
            row.connection_encrypted = self.gateway.seal(values["connection"])
            for name, value in _columns(values).items():
                setattr(row, name, value)
            row.version += 1
        self.gateway.forget(row)

    def _create_source(self, row: Database, secret: str) -> tuple[int, int]:
        fields = {"title": row.title, "description": row.description,
                  "settings": {SOURCE_KEY_SETTING: row.source_key, SECRET_SETTING: secret}}
        member_id = self.session.member_id
        biconnector = self.bitrix.biconnector(member_id)
        connector_id = connector_id_for(self.bitrix, self.gateway.settings, member_id, row.kind)
        try:
            return connector_id, biconnector.add_source({**fields, "connectorId": connector_id})
        except BitrixError as exc:
            if exc.code != "CONNECTOR_NOT_FOUND":
                raise
        forget_connector(self.bitrix, member_id, row.kind)  # an administrator deleted it: register again
        connector_id = connector_id_for(self.bitrix, self.gateway.settings, member_id, row.kind)
        return connector_id, biconnector.add_source({**fields, "connectorId": connector_id})

    def _recreate_source(self, database_id: int) -> None:
        secret = new_secret()
        with self.bitrix.session_factory() as db, db.begin():
            row = db.get(Database, database_id)
            row.secret_hash, row.pending_secret_hash = hash_secret(secret), None
        connector_id, source_id = self._create_source(row, secret)
        with self.bitrix.session_factory() as db, db.begin():
            row = db.get(Database, database_id)
            row.source_id, row.connector_id = source_id, connector_id

    def _update_source(self, database_id: int, values: dict, rotate: bool) -> None:
        """Title and description go to Bitrix24; a rotated secret is accepted by `check` as
        pending while Bitrix24 verifies it, and replaces the old one only once saved."""
        secret = new_secret() if rotate else None
        with self.bitrix.session_factory() as db, db.begin():
            row = db.get(Database, database_id)
            row.pending_secret_hash = hash_secret(secret) if secret else None
            source_id = row.source_id
        fields = {"title": values["title"], "description": values["description"]}
        if secret:
            fields["settings"] = {SECRET_SETTING: secret}
        try:
            self.bitrix.biconnector(self.session.member_id).update_source(source_id, fields)
        finally:
            with self.bitrix.session_factory() as db, db.begin():
                row = db.get(Database, database_id)
                if row is not None and row.pending_secret_hash:
                    succeeded = secret is not None and _pending_saved(self.bitrix, self.session.member_id,
                                                                      source_id, secret)
                    if succeeded:
                        row.secret_hash = row.pending_secret_hash
                    row.pending_secret_hash = None

    def _delete_row(self, database_id: int) -> None:
        with self.bitrix.session_factory() as db, db.begin():
            row = db.get(Database, database_id)
            if row is not None:
                db.delete(row)
        if row is not None:
            self.gateway.forget(row)

    def _portal(self, db):
        portal = portal_by_member_id(db, self.session.member_id)
        if portal is None:
            raise Rejected(404, "PORTAL_NOT_FOUND", "The portal of this session is not known to the app.")
        return portal

    def _row(self, db, raw_id) -> Database:
        database_id = parse_id(raw_id, self.lang)
        portal = self._portal(db)
        row = db.scalar(select(Database).where(Database.id == database_id, Database.portal_id == portal.id))
        if row is None:
            raise Rejected(404, "DATABASE_ENTRY_NOT_FOUND", "No database with this id on this portal.")
        return row


def _pending_saved(bitrix: Bitrix, member_id: str, source_id: int, secret: str) -> bool:
    """Whether Bitrix24 now stores the new secret (update_source raised or not, the answer of
    a timed-out write is unknown: ask)."""
    try:
        source = bitrix.biconnector(member_id).source(source_id)
    except BitrixError:
        return False
    stored = {item.get("code"): item.get("value") for item in source.get("settings") or []}
    return stored.get(SECRET_SETTING) == secret


API_NAMES = {"title": "title", "description": "description", "schema": "schema", "tables": "tables",
             "saved_queries": "savedQueries", "host": "host", "port": "port", "database": "database",
             "user": "user", "password": "password", "tls_mode": "tlsMode"}


def diff(current: dict, values: dict) -> list[tuple[str, object, object]]:
    before = {**current, **current["connection"].__dict__}
    after = {**values, **values["connection"].__dict__}
    changes = []
    for name, api_name in API_NAMES.items():
        if (before.get(name) or None) != (after.get(name) or None):
            shown = (before.get(name), after.get(name))
            if name == "password":  # only whether one is set
                shown = tuple(MASK if value else None for value in shown)
            changes.append((api_name, *shown))
    return changes


def _history_change(name: str, before, after) -> dict:
    """One `diff` row as the history keeps it: the password only as set ("***") or not."""
    if name == "password":
        return {"field": HISTORY_PREFIX + name, "old": before, "new": after, "secret": True}
    shown = [None if value == "-" else value for value in (_shown(name, before), _shown(name, after))]
    return {"field": HISTORY_PREFIX + name, "old": shown[0], "new": shown[1], "secret": False}


def _columns(values: dict) -> dict:
    return {"title": values["title"], "description": values["description"], "kind": values["kind"],
            "schema_name": values["schema"], "tables": values["tables"], "saved_queries": values["saved_queries"]}


# --- validation -------------------------------------------------------------------------------

def validate(fields, kinds: tuple[str, ...], current: dict | None) -> dict:
    """Cleaned values, or InvalidFields naming each bad field. `current`: the stored entry (an
    edit): absent fields keep their values, an empty password keeps the stored one."""
    if not isinstance(fields, dict):
        raise InvalidFields([FieldError("fields", "INVALID_FIELDS", "Send the database as a JSON object.")])
    errors: list[FieldError] = []
    current = current or {}
    stored: Connection = current.get("connection") or Connection()
    kind_name = fields.get("kind", current.get("kind"))
    if current and "kind" in fields and fields["kind"] != current.get("kind"):
        errors.append(FieldError("kind", "VALIDATION_IMMUTABLE_FIELD",
                                 "The kind of a database cannot change; add a new database instead."))
    if kind_name not in kinds:
        errors.append(FieldError("kind", "INVALID_KIND", f"Choose one of: {', '.join(kinds)}."))
        raise InvalidFields(errors)
    kind = KINDS[kind_name]
    title = _text(fields, "title", current.get("title"), errors, required=True, limit=512)
    description = _text(fields, "description", current.get("description") or "", errors, limit=2000)
    host = _text(fields, "host", stored.host, errors, required=kind.needs_host, limit=253)
    database = _text(fields, "database", stored.database, errors, required=True, limit=255)
    user = _text(fields, "user", stored.user, errors, required=kind.needs_host, limit=255)
    password = fields.get("password") if isinstance(fields.get("password"), str) and fields.get("password") \
        else stored.password
    port = _port(fields.get("port", stored.port), kind.default_port, errors) if kind.needs_host else None
    tls_mode = fields.get("tlsMode", stored.tls_mode or (kind.tls_modes[0] if kind.tls_modes else ""))
    if kind.tls_modes and tls_mode not in kind.tls_modes:
        errors.append(FieldError("tlsMode", "INVALID_TLS_MODE", f"Choose one of: {', '.join(kind.tls_modes)}."))
    schema = _text(fields, "schema", current.get("schema") or "", errors, limit=255) or None
    tables = _tables(fields.get("tables", current.get("tables") or []), errors)
    saved_queries = _saved_queries(fields.get("savedQueries", current.get("saved_queries") or []), errors)
    if errors:
        raise InvalidFields(errors)
    connection = replace(stored, host=host or "", port=port, database=database, user=user or "",
                         password=password or "", tls_mode=tls_mode if kind.tls_modes else "")
    return {"kind": kind_name, "title": title, "description": description, "connection": connection,
            "schema": schema, "tables": tables, "saved_queries": saved_queries}


def _text(fields: dict, name: str, default, errors: list, *, required: bool = False, limit: int = 512):
    value = fields.get(name, default)
    if value is None:
        value = ""
    if not isinstance(value, str) or any(ord(char) < 32 and char not in "\t\n" for char in value):
        errors.append(FieldError(name, "INVALID_VALUE", f"{name} must be text without control characters."))
        return ""
    value = value.strip()
    if required and not value:
        errors.append(FieldError(name, "REQUIRED", f"{name} is required."))
    elif len(value) > limit:
        errors.append(FieldError(name, "TOO_LONG", f"{name} is longer than {limit} characters."))
    return value


def _port(value, default: int | None, errors: list) -> int | None:
    if value in (None, ""):
        return default
    try:
        port = int(str(value).strip())
    except ValueError:
        port = 0
    if not 1 <= port <= 65535 or isinstance(value, bool):
        errors.append(FieldError("port", "INVALID_PORT", "The port must be a whole number from 1 to 65535."))
        return None
    return port


def _tables(value, errors: list) -> list[str]:
    if isinstance(value, str):
        value = [part.strip() for part in value.replace("\n", ",").split(",")]
    if not isinstance(value, list) or len(value) > MAX_TABLES or \
            not all(isinstance(item, str) and len(item) <= 255 for item in value):
        errors.append(FieldError("tables", "INVALID_TABLES", "List the table names to expose, or none for all."))
        return []
    return sorted({item.strip() for item in value if item.strip()})


def _saved_queries(value, errors: list) -> list[dict]:
    if not isinstance(value, list) or len(value) > MAX_SAVED_QUERIES:
        errors.append(FieldError("savedQueries", "INVALID_SAVED_QUERIES",
                                 f"Saved queries are a list of at most {MAX_SAVED_QUERIES} {{title, sql}} items."))
        return []
    cleaned, codes = [], set()
    for position, item in enumerate(value, start=1):
        field = f"savedQueries[{position - 1}]"
        if not isinstance(item, dict) or not isinstance(item.get("title"), str) or not item["title"].strip():
            errors.append(FieldError(f"{field}.title", "REQUIRED", "Give the saved query a title."))
            continue
        try:
            sql = check_saved_query(item.get("sql"))
        except ValueError as exc:
            errors.append(FieldError(f"{field}.sql", "INVALID_QUERY", str(exc)))
            continue
        code = saved_query_code(str(item.get("code") or item["title"]), position)
        if code in codes:
            code = f"{code}_{position}"
        codes.add(code)
        cleaned.append({"code": code, "title": item["title"].strip()[:200], "sql": sql})
    return cleaned


# --- plans: `databases:` entries ---------------------------------------------------------------

def plan_step(bitrix: Bitrix, gateway: Gateway, actor: Actor | None = None, if_unchanged: bool = False):
    """The step PlanRunner runs per portal for a plan's `databases` (services/plans.py); the
    history names `actor` (default: the operator, via "plan"). With `if_unchanged`, an entry that
    changed since the step read it is skipped as EDIT_CONFLICT."""
    actor = actor or Actor.operator("plan")

    def apply(member_id: str, targets: tuple[Target, ...], dry_run: bool) -> list[Update]:
        session = TabSession(member_id=member_id, user_id=0, is_admin=True, can_edit=True)
        service = DatabaseService(bitrix, gateway, session, actor)
        updates = [_apply_target(service, target, dry_run, if_unchanged) for target in targets]
        return [update for update in updates if update.changes or update.error]

    return apply


def _apply_target(service: DatabaseService, target: Target, dry_run: bool, if_unchanged: bool = False) -> Update:
    """Present means: added when no entry matches, else updated where it differs."""
    existing = _matching_entry(service.list(), target.match)
    fields = {**target.fields, **({"title": target.match["title"]} if "title" in target.match else {})}
    title = str(fields.get("title") or target.describe())
    update = Update("database", existing["id"] if existing else 0, title, {}, [])
    try:
        if existing is None:
            if "id" in target.match:
                raise Rejected(404, "DATABASE_ENTRY_NOT_FOUND", f"No database #{target.match['id']} on this portal.")
            values = validate(fields, service.gateway.settings.kinds, current=None)
            update.changes = [FieldChange(name, "-", _shown(name, after)) for name, _before, after in
                              diff(_empty(values), values)]
            if not dry_run:
                update.object_id = service.add(fields)["id"]
        else:
            _row, _values, changes = service.changes(existing["id"], fields)
            update.changes = [FieldChange(name, _shown(name, before), _shown(name, after))
                              for name, before, after in changes]
            if changes and not dry_run:
                service.update(existing["id"], {**fields, "ifVersion": existing["version"]} if if_unchanged else fields)
        update.applied = not dry_run
    except (Rejected, BitrixError) as exc:
        update.error, update.error_code = getattr(exc, "description", str(exc)), exc.code
    return update


def _matching_entry(entries: list[dict], match: dict) -> dict | None:
    key, value = next(iter(match.items()))
    return next((entry for entry in entries if entry.get(key) == value), None)


def _empty(values: dict) -> dict:
    return {"connection": Connection(), "title": None, "description": None, "kind": values["kind"],
            "schema": None, "tables": [], "saved_queries": []}


def _shown(name: str, value) -> str:
    if name == "password":
        return "***"
    if name == "savedQueries":
        return ", ".join(item["title"] for item in value or []) or "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return "-" if value in (None, "") else str(value)
