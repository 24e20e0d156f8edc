"""A portal's users by id and by name, through the portal's stored token.

`user.get` (FILTER by ID, at most 50 per page) gives names, which are cached per portal in
`portal_user_names` for "last change" and the editor list; `user.search` (FILTER.FIND: the start
of a name, last name, position or department) lets an administrator pick editors by name.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..models import PortalUserName, utcnow
from .errors import BitrixError
from .tokens import portal_by_member_id

NAME_TTL = timedelta(days=1)
PAGE_SIZE = 50  # user.get and user.search answer 50 users per page
MAX_SEARCH_LENGTH = 100


def full_name(user: dict) -> str:
    return " ".join(str(part) for part in (user.get("NAME"), user.get("LAST_NAME")) if part).strip()


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _user_id(user) -> int | None:
    raw = str(user.get("ID", "")) if isinstance(user, dict) else ""
    return int(raw) if raw.isdigit() else None


class PortalUsers:
    def __init__(self, bitrix, member_id: str):
        self.bitrix = bitrix
        self.member_id = member_id

    def found(self, user_ids: list[int]) -> dict[int, str]:
        """The ids `user.get` knows, with their names (raises BitrixError if the portal fails)."""
        client = self.bitrix.client(self.member_id)
        names: dict[int, str] = {}
        ids = sorted(set(user_ids))
        for start in range(0, len(ids), PAGE_SIZE):
            answer = client.call("user.get", {"FILTER": {"ID": ids[start:start + PAGE_SIZE]}})
            for user in answer if isinstance(answer, list) else []:
                if _user_id(user) is not None:
                    names[_user_id(user)] = full_name(user)
        self._remember(names)
        return names

    def names(self, user_ids: list[int]) -> dict[int, str]:
        """Names by id: cached ones if fresh, the rest from `user.get`; best effort (a failing
        portal leaves the stale or missing names as they are)."""
        ids = {user_id for user_id in user_ids if user_id}
        cached = self._cached(ids)
        fresh = {user_id: row.name for user_id, row in cached.items() if _aware(row.fetched_at) >= utcnow() - NAME_TTL}
        missing = sorted(ids - set(fresh))
        if missing:
            try:
                fresh.update(self.found(missing))
            except BitrixError:
                fresh.update({user_id: cached[user_id].name for user_id in missing if user_id in cached})
        return fresh

    def search(self, text: str) -> list[dict]:
        """Users whose name (or last name, position, department) starts with `text`."""
        params = {"FILTER": {"FIND": text}} if text else {}  # nothing typed: the first page of users
        answer = self.bitrix.client(self.member_id).call("user.search", params)
        users = [{"id": _user_id(user), "name": full_name(user)}
                 for user in (answer if isinstance(answer, list) else []) if _user_id(user) is not None]
        self._remember({user["id"]: user["name"] for user in users})
        return users

    def _cached(self, ids: set[int]) -> dict[int, PortalUserName]:
        if not ids:
            return {}
        with self.bitrix.session_factory() as db:
            portal = portal_by_member_id(db, self.member_id)
            if portal is None:
                return {}
            rows = db.scalars(select(PortalUserName).where(
                PortalUserName.portal_id == portal.id, PortalUserName.user_id.in_(sorted(ids)))).all()
            return {row.user_id: row for row in rows}

    def _remember(self, names: dict[int, str]) -> None:
        if not names:
            return
        try:
            self._store(names)
        except IntegrityError:
            pass  # another worker cached the same user at the same moment

    def _store(self, names: dict[int, str]) -> None:
        with self.bitrix.session_factory() as db, db.begin():
            portal = portal_by_member_id(db, self.member_id)
            if portal is None:
                return
            for user_id, name in names.items():
                row = db.get(PortalUserName, (portal.id, user_id))
                if row is None:
                    db.add(PortalUserName(portal_id=portal.id, user_id=user_id, name=name[:255], fetched_at=utcnow()))
                else:
                    row.name, row.fetched_at = name[:255], utcnow()
