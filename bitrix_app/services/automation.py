"""Work across many portals: pick them, run a task on each in a bounded thread pool, keep tokens alive.

A portal that fails (needs re-authorization, uninstalled, unreachable, any Bitrix24 error) is
reported with a readable reason and skipped; it never stops the others. Each portal's requests
still go through its own shared leaky bucket (services/ratelimit.py), so running portals side by
side is safe: the limits are per portal.

Plain Python, no Flask: the CLI, scheduled jobs and the benchmark all use it.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sized
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from itertools import islice
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator, Sequence, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from ..models import Database, Portal, PortalHistory, PortalStatus, PortalToken
from .crypto import TokenCipher, TokenCipherError
from .errors import BitrixError, PortalUnavailable
from .tokens import as_utc, find_portal

DEFAULT_WORKERS = 8
# Bitrix24 gives `operating_reset_at` up to ten minutes ahead; never wait longer than that.
MAX_OPERATION_WAIT = 600.0
OPERATION_LIMIT_RETRIES = 3

T = TypeVar("T")


# --- which portals -------------------------------------------------------------------------

@dataclass(frozen=True)
class PortalSummary:
    """What the CLI shows about a portal. Deliberately has no token values."""

    member_id: str
    domain: str
    status: str
    client_endpoint: str
    scope: str
    installed_at: datetime | None
    token_expires_at: datetime | None
    last_refresh: datetime | None
    token_user_id: int | None

    def to_dict(self) -> dict:
        return {
            "member_id": self.member_id,
            "domain": self.domain,
            "status": self.status,
            "client_endpoint": self.client_endpoint,
            "scope": self.scope,
            "installed_at": _iso(self.installed_at),
            "token_expires_at": _iso(self.token_expires_at),
            "last_refresh": _iso(self.last_refresh),
            "token_user_id": self.token_user_id,
        }


def _iso(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat(timespec="seconds") if moment else None


def _summary(portal: Portal) -> PortalSummary:
    token = portal.token
    return PortalSummary(
        member_id=portal.member_id,
        domain=portal.domain,
        status=portal.status,
        client_endpoint=portal.client_endpoint,
        scope=portal.scope,
        installed_at=portal.installed_at,
        token_expires_at=token.expires_at if token else None,
        last_refresh=(token.refreshed_at or portal.installed_at) if token else None,
        token_user_id=token.user_id if token else None,
    )


def portal_summaries(session_factory) -> list[PortalSummary]:
    with session_factory() as session:
        portals = session.scalars(select(Portal).options(selectinload(Portal.token)).order_by(Portal.domain))
        return [_summary(portal) for portal in portals]


def portal_summary(session_factory, member_id_or_domain: str) -> PortalSummary | None:
    with session_factory() as session:
        portal = find_portal(session, member_id_or_domain)
        return _summary(portal) if portal else None


def portal_history(session_factory, member_id: str, limit: int = 10) -> list[dict]:
    """The latest lifecycle entries (install, refresh, refresh_failed, ...), newest first."""
    with session_factory() as session:
        rows = session.scalars(
            select(PortalHistory).where(PortalHistory.member_id == member_id)
            .order_by(PortalHistory.id.desc()).limit(limit)
        )
        return [{"at": _iso(row.created_at), "kind": row.kind, "detail": row.detail} for row in rows]


def iter_installed_member_ids(session_factory, page_size: int = 500) -> Iterator[str]:
    """The same portals (in id order), read `page_size` at a time: memory stays flat in their number
    and no connection or cursor is held while the caller works."""
    after = 0
    while True:
        with session_factory() as session:
            rows = session.execute(
                select(Portal.id, Portal.member_id).where(Portal.status != PortalStatus.UNINSTALLED, Portal.id > after)
                .order_by(Portal.id).limit(page_size)).all()
        if not rows:
            return
        yield from (member_id for _, member_id in rows)
        after = rows[-1][0]


def installed_member_ids(session_factory) -> list[str]:
    """Every portal the app is installed on, including ones that currently fail (they get reported)."""
    with session_factory() as session:
        return list(session.scalars(
            select(Portal.member_id).where(Portal.status != PortalStatus.UNINSTALLED).order_by(Portal.domain)
        ))


# --- running a task on many portals --------------------------------------------------------

@dataclass
class PortalOutcome:
    """How one portal went. `status` is a short word; `reason` explains a failure or a skip."""

    portal: str  # as the caller named it (member id or domain)
    status: str
    reason: str = ""
    detail: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def reason_for(exc: Exception) -> str:
    """A one-line reason for a failed portal, never containing a token."""
    if isinstance(exc, PortalUnavailable):
        return exc.description
    if isinstance(exc, BitrixError):
        return f"{exc.code}: {exc.description}" if exc.description else exc.code
    return f"unexpected {type(exc).__name__}: {exc}"


def run_for_portals(
    portals: Iterable[str],
    task: Callable[[str], T],
    on_error: Callable[[str, Exception], T],
    workers: int = DEFAULT_WORKERS,
) -> Iterator[T]:
    """Run `task(portal)` for every portal on a bounded pool; yield results as they finish.

    An exception from a task becomes `on_error(portal, exc)`, so one portal never stops the rest.
    `portals` may be a stream: at most two tasks per worker are taken from it ahead, and a result is
    dropped once yielded, so memory does not grow with the number of portals.
    """
    def guarded(portal: str) -> T:
        try:
            return task(portal)
        except Exception as exc:  # every failure is reported per portal, whatever its kind
            return on_error(portal, exc)

    if isinstance(portals, Sized):
        if len(portals) == 0:
            return
        workers = min(workers, len(portals))
    pending = iter(portals)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="portal") as pool:
        running = {pool.submit(guarded, portal) for portal in islice(pending, 2 * max(1, workers))}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            running |= {pool.submit(guarded, portal) for portal in islice(pending, len(done))}
            for future in done:
                yield future.result()


def failed_outcome(portal: str, exc: Exception) -> PortalOutcome:
    return PortalOutcome(portal, "failed", reason_for(exc))


# --- OPERATION_TIME_LIMIT --------------------------------------------------------------------

def respecting_operation_limit(
    call: Callable[[], T],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    retries: int = OPERATION_LIMIT_RETRIES,
) -> T:
    """Run `call`; on OPERATION_TIME_LIMIT wait until the reset time Bitrix24 gave, then retry."""
    for attempt in range(retries + 1):
        try:
            return call()
        except BitrixError as exc:
            if exc.code != "OPERATION_TIME_LIMIT" or attempt == retries:
                raise
            sleep(seconds_until(exc.reset_at, clock))
    raise AssertionError("unreachable")


def seconds_until(reset_at: float | None, clock: Callable[[], float] = time.time) -> float:
    """How long to wait for an operating-time reset; a minute when Bitrix24 did not say."""
    if reset_at is None:
        return 60.0
    return min(MAX_OPERATION_WAIT, max(1.0, reset_at - clock()))


# --- keeping tokens alive --------------------------------------------------------------------

DEFAULT_REFRESH_AGE_DAYS = 30


def refresh_if_older(bitrix, portal: str, older_than: timedelta, now: datetime | None = None) -> PortalOutcome:
    """Refresh a portal's token pair if it was obtained more than `older_than` ago.

    Refresh tokens die after 180 days unused, but Bitrix24 may block apps that refresh too
    often, so a daily job refreshes only what is getting old. Uses the single-flight refresh of
    the TokenStore, so it is safe next to web workers refreshing the same portal.
    """
    now = now or datetime.now(timezone.utc)
    summary = portal_summary(bitrix.session_factory, portal)
    if summary is None:
        return PortalOutcome(portal, "failed", f"No portal with member id or domain {portal!r}.")
    token = bitrix.tokens.current(summary.member_id)  # raises PortalUnavailable for unusable portals
    age = now - as_utc(summary.last_refresh) if summary.last_refresh else None
    if age is not None and age < older_than:
        return PortalOutcome(portal, "skipped", f"token pair only {age.days} day(s) old",
                             {"domain": summary.domain, "member_id": summary.member_id})
    fresh = bitrix.tokens.refresh(summary.member_id, token.version, bitrix.oauth.refresh)
    return PortalOutcome(portal, "refreshed", "", {
        "domain": summary.domain,
        "member_id": summary.member_id,
        "token_expires_at": _iso(fresh.expires_at),
    })


def refresh_portals(
    bitrix, portals: list[str], older_than_days: float, workers: int = DEFAULT_WORKERS
) -> Iterator[PortalOutcome]:
    older_than = timedelta(days=older_than_days)
    return run_for_portals(portals, lambda portal: refresh_if_older(bitrix, portal, older_than),
                           failed_outcome, workers)


# --- encryption key rotation -----------------------------------------------------------------

# Every stored secret: which model holds it, in which column, and what to call it in a report.
STORED_TOKENS = (
    (Portal, "application_token_encrypted", "application token"),
    (PortalToken, "access_token_encrypted", "access token"),
    (PortalToken, "refresh_token_encrypted", "refresh token"),
    (Database, "connection_encrypted", "database credentials"),
)


@dataclass
class KeyRotationReport:
    """What `rotate_token_keys` did, in counts; never a token value."""

    reencrypted: int = 0
    already_current: int = 0  # encrypted with the first key already: left as it was
    unreadable: list[dict] = field(default_factory=list)  # {member_id, token}: no configured key opens it

    def to_dict(self) -> dict:
        return {"reencrypted": self.reencrypted, "already_current": self.already_current,
                "unreadable": self.unreadable}


def rotate_token_keys(session_factory, keys: Sequence[str]) -> KeyRotationReport:
    """Re-encrypt every stored token with the first of `keys` (TOKEN_ENCRYPTION_KEYS).

    Runs in one transaction with the token rows locked, so a refresh in a web worker waits
    instead of having its new pair overwritten by the old one. Unreadable tokens are left as
    they are and reported. Afterwards the keys after the first one can be retired.
    """
    cipher, first_key_only = TokenCipher(list(keys)), TokenCipher(list(keys[:1]))
    report = KeyRotationReport()
    with session_factory() as session, session.begin():
        for row, column, kind in _stored_tokens_locked(session):
            if getattr(row, column):
                _rotate_column(row, column, kind, cipher, first_key_only, report)
    return report


def _stored_tokens_locked(session) -> Iterator[tuple[object, str, str]]:
    """(row, column, kind) for every stored token; rows locked for writing like TokenStore.refresh does."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(PortalToken).values(version=PortalToken.version))  # the write lock, up front
    rows = {model: session.scalars(select(model).with_for_update()).all() for model in (Portal, PortalToken, Database)}
    for model, column, kind in STORED_TOKENS:
        for row in rows[model]:
            yield row, column, kind


def _rotate_column(row, column: str, kind: str, cipher: TokenCipher, first_key_only: TokenCipher,
                   report: KeyRotationReport) -> None:
    value = getattr(row, column)
    if _opens(first_key_only, value):
        report.already_current += 1
        return
    try:
        setattr(row, column, cipher.rotate(value))
    except TokenCipherError:
        report.unreadable.append({"member_id": _member_id(row), "token": kind})
    else:
        report.reencrypted += 1


def _opens(cipher: TokenCipher, value: str) -> bool:
    try:
        cipher.decrypt(value)
    except TokenCipherError:
        return False
    return True


def _member_id(row) -> str:
    if isinstance(row, Portal):
        return row.member_id
    if isinstance(row, Database):
        return f"portal #{row.portal_id}"
    return row.portal.member_id
