"""Change history of connectors and sources, and the versions that detect concurrent edits.

Every write the app makes to a Bitrix24 connector or source (the tab and its API, the CLI, plans)
is recorded per portal in `change_history`: who (a Bitrix24 user, or the operator of a CLI run or
a plan, named by BITRIX_OPERATOR or USER), when, from where, and each changed field's old and new
value. Secret setting values are never stored: their old and new values are "***" (set) or None.

A version is a keyed hash (HMAC with the app's client secret, so it tells nothing about secret
values) of the fields of an object an editor can change, as Bitrix24 returns them. An editor
sends the version it loaded (`ifVersion`); a write to an object whose version is another by now
is refused with `EditConflict`.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from sqlalchemy import bindparam, func, insert, select

from ..models import ChangeRecord, Portal
from .biconnector import normalize_settings
from .errors import Rejected
from .messages import text
from .secret_settings import is_secret_by_default
from .tokens import portal_by_member_id

MASK = "***"
CONNECTOR = "connector"
SOURCE = "source"
CONNECTOR_FIELDS = ("title", "description", "logo", "sort", "urlCheck", "urlData", "urlTableList",
                    "urlTableDescription", "settings", "supportMapping", "sourceCode")
SOURCE_FIELDS = ("title", "description", "active", "code", "connectorId")
REVERTIBLE_SOURCE_FIELDS = ("title", "description")  # what source.update may change besides settings
SETTING_PREFIX = "settings."
MAX_VERSION_LENGTH = 64
MAX_ENTRIES = 200
REVERTIBLE_ACTIONS = ("update", "revert")


@dataclass(frozen=True)
class Actor:
    """Who makes a change and through what: a Bitrix24 user in the tab ("user", via "tab"), code
    calling the services ("api"), or the operator of a CLI run ("cli") or plan ("plan")."""

    kind: str  # user | cli | plan
    id: int | None
    name: str
    via: str  # tab | api | cli | plan

    @classmethod
    def user(cls, user_id: int, name: str = "", via: str = "tab") -> Actor:
        return cls("user", user_id, name, via)

    @classmethod
    def operator(cls, via: str, environ: Mapping[str, str] | None = None) -> Actor:
        """The person running the CLI or a plan, as the environment names them."""
        environ = os.environ if environ is None else environ
        name = environ.get("BITRIX_OPERATOR") or environ.get("USER") or environ.get("USERNAME") or ""
        return cls(via, None, name.strip()[:255], via)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "id": self.id, "name": self.name}


class EditConflict(Rejected):
    """The object changed since the editor loaded it; `conflict` says who changed it and what."""

    def __init__(self, conflict: dict, lang: str = "en"):
        super().__init__(409, "EDIT_CONFLICT", text("EDIT_CONFLICT", lang))
        self.conflict = conflict


def checked_version(raw, lang: str = "en") -> str | None:
    """`ifVersion` from a request: absent (no check) or a short text."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw or len(raw) > MAX_VERSION_LENGTH:
        raise Rejected(400, "INVALID_VERSION", text("INVALID_VERSION", lang))
    return raw


# --- versions ----------------------------------------------------------------------------------

def editable_state(kind: str, item: Mapping) -> dict:
    """The fields of a connector or source an editor can change, in a comparable form."""
    if kind == CONNECTOR:
        state = {name: item.get(name) for name in CONNECTOR_FIELDS}
        state["settings"] = normalize_settings(item.get("settings"))
        return state
    state = {name: item.get(name) for name in SOURCE_FIELDS}
    state["settings"] = _setting_values(item)
    return state


def version_of(kind: str, item: Mapping, key: str, is_secret: Callable[[str], bool] = is_secret_by_default) -> str:
    """Secret values count only as set or empty: a version must never confirm a guessed secret
    (offline, or by an editor comparing versions around a write)."""
    state = editable_state(kind, item)
    if kind == SOURCE:
        state["settings"] = {code: (MASK if value else "") if is_secret(code) else value
                             for code, value in state["settings"].items()}
    payload = json.dumps(state, sort_keys=True, ensure_ascii=False, default=str)
    return hmac.new(key.encode(), f"{kind}\n{payload}".encode(), hashlib.sha256).hexdigest()[:32]


def _setting_values(item: Mapping) -> dict[str, str]:
    return {str(row.get("code")): str(row.get("value") if row.get("value") is not None else "")
            for row in item.get("settings") or [] if isinstance(row, Mapping)}


# --- what changed ------------------------------------------------------------------------------

def connector_changes(before: Mapping, after: Mapping) -> list[dict]:
    old, new = editable_state(CONNECTOR, before), editable_state(CONNECTOR, after)
    return [{"field": name, "old": old[name], "new": new[name], "secret": False}
            for name in CONNECTOR_FIELDS if _comparable(old[name]) != _comparable(new[name])]


def source_changes(before: Mapping, after: Mapping, is_secret: Callable[[str], bool],
                   sent_codes: Iterable[str] = ()) -> list[dict]:
    """Changed fields and settings. A secret setting counts as changed when a value was sent for
    it (compared with the stored one it would tell whether a guess was right) or when it became
    set or empty; its values are only ever "***" or None."""
    old, new = editable_state(SOURCE, before), editable_state(SOURCE, after)
    changes = [{"field": name, "old": old[name], "new": new[name], "secret": False}
               for name in SOURCE_FIELDS if _comparable(old[name]) != _comparable(new[name])]
    sent = set(sent_codes)
    old_settings, new_settings = old["settings"], new["settings"]
    for code in sorted(set(old_settings) | set(new_settings)):
        was, now = old_settings.get(code, ""), new_settings.get(code, "")
        if is_secret(code):
            if code in sent or bool(was) != bool(now):
                changes.append({"field": SETTING_PREFIX + code, "old": MASK if was else None,
                                "new": MASK if now else None, "secret": True})
        elif was != now:
            changes.append({"field": SETTING_PREFIX + code, "old": was or None, "new": now or None, "secret": False})
    return changes


def conflicting_fields(kind: str, current: Mapping, fields: Mapping, is_secret: Callable[[str], bool]) -> list[dict]:
    """The submitted fields whose value differs from what the object has now ("yours" / "theirs")."""
    state = editable_state(kind, current)
    result = []
    for name, yours in fields.items():
        if kind == SOURCE and name == "settings" and isinstance(yours, Mapping):
            for code, value in yours.items():
                theirs = state["settings"].get(str(code), "")
                if is_secret(str(code)):
                    result.append({"field": SETTING_PREFIX + str(code), "yours": MASK, "theirs": MASK if theirs else None})
                elif str(value).strip() != theirs:
                    result.append({"field": SETTING_PREFIX + str(code), "yours": value, "theirs": theirs or None})
        elif name in state:
            wanted = normalize_settings(yours) if name == "settings" else yours
            if _comparable(wanted) != _comparable(state[name]):
                result.append({"field": name, "yours": yours, "theirs": state[name]})
    return result


def _comparable(value):
    """Bitrix24 returns an empty text for an empty field, and numbers as text in places."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(int(value)) if float(value).is_integer() else str(value)
    return value


# --- reverting ---------------------------------------------------------------------------------

def masked(changes: Iterable[Mapping], is_secret: Callable[[str], bool] | None) -> list[dict]:
    """Changes with the settings that are secret *now* masked: a value recorded while its setting
    was shown is hidden (and not revertible) once an administrator marks the setting secret."""
    result = []
    for change in changes:
        change = dict(change)
        name = str(change.get("field"))
        if (is_secret is not None and not change.get("secret") and name.startswith(SETTING_PREFIX)
                and is_secret(name[len(SETTING_PREFIX):])):
            change.update(old=MASK if change.get("old") else None, new=MASK if change.get("new") else None, secret=True)
        result.append(change)
    return result


def revertible_change(kind: str, change: Mapping) -> bool:
    if change.get("secret"):
        return False
    name = str(change.get("field"))
    if kind == CONNECTOR:
        return name in CONNECTOR_FIELDS and not (name == "sort" and change.get("old") is None)
    if name.startswith(SETTING_PREFIX):
        return change.get("old") not in (None, "")  # the tab cannot empty a setting
    return name in REVERTIBLE_SOURCE_FIELDS


def revertible(record: ChangeRecord, is_secret: Callable[[str], bool] | None = None) -> bool:
    return record.action in REVERTIBLE_ACTIONS and any(
        revertible_change(record.object_type, change) for change in masked(record.changes or [], is_secret))


def revert_fields(record: ChangeRecord, is_secret: Callable[[str], bool] | None = None) -> dict:
    """The update that puts back the old values of a change (secrets left as they are)."""
    fields: dict = {}
    settings: dict = {}
    for change in masked(record.changes or [], is_secret):
        if not revertible_change(record.object_type, change):
            continue
        name, old = str(change["field"]), change.get("old")
        if name.startswith(SETTING_PREFIX):
            settings[name[len(SETTING_PREFIX):]] = old
        else:
            fields[name] = "" if old is None else old
    if settings:
        fields["settings"] = settings
    return fields


# --- the store -----------------------------------------------------------------------------------

def present_change(record: ChangeRecord, is_secret: Callable[[str], bool] | None = None) -> dict:
    return {
        "id": record.id,
        "at": _iso(record),
        "actor": {"kind": record.actor_kind, "id": record.actor_id, "name": record.actor_name},
        "via": record.via,
        "action": record.action,
        "changes": masked(record.changes or [], is_secret),
        "revertible": revertible(record, is_secret),
        **({"reverts": record.reverts_id} if record.reverts_id else {}),
    }


def last_change(record: ChangeRecord | None) -> dict | None:
    if record is None:
        return None
    return {"at": _iso(record), "actor": {"kind": record.actor_kind, "id": record.actor_id,
                                          "name": record.actor_name}, "via": record.via}


def _row(portal_id: int, kind: str, object_id: int, actor: Actor, changes: list[dict], action: str = "update",
         reverts_id: int | None = None) -> dict:
    """A new change_history row's values (id and created_at come from their defaults)."""
    return {"portal_id": portal_id, "object_type": kind, "object_id": int(object_id), "action": action,
            "actor_kind": actor.kind, "actor_id": actor.id, "actor_name": actor.name[:255], "via": actor.via,
            "changes": changes, "reverts_id": reverts_id}


def _iso(record: ChangeRecord) -> str:
    moment = record.created_at
    if moment.tzinfo is None:  # SQLite gives back naive UTC
        return moment.isoformat(timespec="seconds") + "+00:00"
    return moment.isoformat(timespec="seconds")


_PORTAL_ID = select(Portal.id).where(Portal.member_id == bindparam("member_id"))  # built once, compiled once


class History:
    """One portal's change history (by member_id: a portal never sees another's)."""

    def __init__(self, session_factory, member_id: str):
        self.session_factory = session_factory
        self.member_id = member_id

    def record(self, kind: str, object_id: int, actor: Actor, changes: list[dict], action: str = "update",
               reverts_id: int | None = None) -> int | None:
        """Store one change; an update that changed nothing is not recorded."""
        if not changes and action in REVERTIBLE_ACTIONS:
            return None
        with self.session_factory() as db, db.begin():
            portal = portal_by_member_id(db, self.member_id)
            if portal is None:
                return None
            entry = ChangeRecord(**_row(portal.id, kind, object_id, actor, changes, action, reverts_id))
            db.add(entry)
            db.flush()
            return entry.id

    def record_many(self, actor: Actor, updates: Iterable[tuple[str, int, list[dict]]]) -> int:
        """Store the changes of many updates (kind, object id, changes) in one transaction and one
        INSERT (a plan writes hundreds at once); updates that changed nothing are left out.
        Returns how many were stored."""
        updates = [(kind, object_id, changes) for kind, object_id, changes in updates if changes]
        if not updates:
            return 0
        with self.session_factory() as db, db.begin():
            portal_id = db.scalar(_PORTAL_ID, {"member_id": self.member_id})  # no ORM object
            if portal_id is None:
                return 0
            # The table, not the mapped class: a plain executemany, without the ORM's bulk machinery.
            db.execute(insert(ChangeRecord.__table__), [_row(portal_id, kind, object_id, actor, changes)
                                                        for kind, object_id, changes in updates])
        return len(updates)

    def entries(self, kind: str, object_id: int, is_secret: Callable[[str], bool] | None = None) -> list[dict]:
        """Newest first; `is_secret(code)`: which of a source's settings are secret now."""
        with self.session_factory() as db:
            return [present_change(record, is_secret) for record in db.scalars(
                self._query(db, kind).where(ChangeRecord.object_id == object_id).limit(MAX_ENTRIES))]

    def last_changes(self, kind: str, object_ids: Iterable[int]) -> dict[int, dict]:
        ids = sorted({int(object_id) for object_id in object_ids if isinstance(object_id, int)})
        if not ids:
            return {}
        with self.session_factory() as db:
            newest = self._query(db, kind).with_only_columns(func.max(ChangeRecord.id)).where(
                ChangeRecord.object_id.in_(ids)).group_by(ChangeRecord.object_id).order_by(None)
            records = db.scalars(select(ChangeRecord).where(ChangeRecord.id.in_(newest.scalar_subquery())))
            return {record.object_id: last_change(record) for record in records}

    def latest(self, kind: str, object_id: int) -> dict | None:
        return self.last_changes(kind, [object_id]).get(object_id)

    def mask_settings(self, source_ids: Iterable[int], codes: Iterable[str]) -> None:
        """Hide the recorded values of settings that just became secret, in the database too."""
        ids, codes = sorted({int(item) for item in source_ids}), set(codes)
        if not ids or not codes:
            return
        with self.session_factory() as db, db.begin():
            for record in db.scalars(self._query(db, SOURCE).where(ChangeRecord.object_id.in_(ids))):
                changes = masked(record.changes or [], codes.__contains__)
                if changes != record.changes:
                    record.changes = changes

    def change(self, change_id: int) -> ChangeRecord | None:
        with self.session_factory() as db:
            portal = portal_by_member_id(db, self.member_id)
            record = db.get(ChangeRecord, change_id)
            if portal is None or record is None or record.portal_id != portal.id:
                return None
            return record

    def _query(self, db, kind: str):
        portal = portal_by_member_id(db, self.member_id)
        portal_id = portal.id if portal is not None else -1
        return (select(ChangeRecord)
                .where(ChangeRecord.portal_id == portal_id, ChangeRecord.object_type == kind)
                .order_by(ChangeRecord.created_at.desc(), ChangeRecord.id.desc()))
