"""Per-portal token storage and the single-flight refresh.

Refresh tokens rotate and are single-use, so two workers refreshing the same portal at once
would lock it out. `TokenStore.refresh` therefore locks the portal's token row (SELECT ... FOR
UPDATE on PostgreSQL, a write lock taken first on SQLite), re-reads it, skips the refresh if
another worker already did it, and commits the new pair before anyone uses it.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import bindparam, inspect, select, update
from sqlalchemy.orm import Session, joinedload, sessionmaker

from ..models import Portal, PortalHistory, PortalStatus, PortalToken
from .crypto import TokenCipher
from .errors import (
    PORTAL_NEEDS_REAUTH,
    PORTAL_NOT_FOUND,
    PORTAL_PAYMENT_REQUIRED,
    PORTAL_UNINSTALLED,
    OAuthError,
    PortalUnavailable,
)
from .messages import AMBIGUOUS_PORTAL
from .oauth import TokenSet

PORTAL_AMBIGUOUS = "PORTAL_AMBIGUOUS"
# Refresh a little before the stored expiry, so a call does not race the clock.
EXPIRY_LEEWAY = timedelta(seconds=30)
REAUTH_OAUTH_CODES = {"invalid_grant", "invalid_client"}
# Access tokens a process keeps in memory (the most recently used portals'); a plan over thousands
# of portals needs only those in flight, so memory stays flat in the number of portals.
MAX_REMEMBERED_TOKENS = 1024


@dataclass(frozen=True)
class AccessToken:
    value: str
    version: int
    expires_at: datetime

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at - EXPIRY_LEEWAY

    def __repr__(self) -> str:
        return f"AccessToken(version={self.version}, expires_at={self.expires_at!r})"


@dataclass(frozen=True)
class StoredPair:
    """The stored pair as read, whatever the portal's status: what an uninstall probes."""

    access_token: str
    version: int
    # A reinstall after a deleted pair starts again at version 1; the ciphertext still differs.
    ciphertext: str
    portal_status: str
    client_endpoint: str

    def is_current(self, row: PortalToken | None) -> bool:
        return row is not None and row.version == self.version and row.access_token_encrypted == self.ciphertext

    def __repr__(self) -> str:
        return f"StoredPair(version={self.version}, portal_status={self.portal_status!r})"


def as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def record(session: Session, member_id: str, kind: str, detail: str = "") -> None:
    session.add(PortalHistory(member_id=member_id, kind=kind, detail=detail[:1024]))


# Built once: a plan reads a portal per portal, and SQLAlchemy then reuses the compiled statement.
_PORTAL = select(Portal).where(Portal.member_id == bindparam("member_id"))
_PORTAL_WITH_TOKEN = _PORTAL.options(joinedload(Portal.token))


def portal_by_member_id(session: Session, member_id: str, with_token: bool = False) -> Portal | None:
    """`with_token`: the token row comes in the same query (usable after the session closes)."""
    query = _PORTAL_WITH_TOKEN if with_token else _PORTAL
    return session.scalars(query, {"member_id": member_id}).first()


class AmbiguousPortal(PortalUnavailable):
    """Several stored portals have the domain asked for: a renamed portal's old name, now another's."""

    def __init__(self, domain: str, member_ids: list[str]):
        self.domain = domain
        self.member_ids = tuple(member_ids)
        english = AMBIGUOUS_PORTAL[0].format(domain=domain, member_ids=", ".join(self.member_ids))
        super().__init__(PORTAL_AMBIGUOUS, english)


def find_portal(session: Session, member_id_or_domain: str, with_token: bool = False) -> Portal | None:
    """By member id, else by domain. A domain several portals have is refused (AmbiguousPortal):
    picking one could act on the wrong customer's portal."""
    portal = portal_by_member_id(session, member_id_or_domain, with_token)
    if portal is not None:
        return portal
    query = select(Portal).where(Portal.domain == member_id_or_domain).order_by(Portal.member_id)
    matches = list(session.scalars(query.options(joinedload(Portal.token)) if with_token else query))
    if len(matches) > 1:
        raise AmbiguousPortal(member_id_or_domain, [match.member_id for match in matches])
    return matches[0] if matches else None


def store_address(session_factory: sessionmaker, member_id: str, domain: str, client_endpoint: str) -> Portal:
    """The portal's address as the authorization server reported it; a change is recorded."""
    with session_factory() as session, session.begin():
        portal = portal_by_member_id(session, member_id)
        if portal is None:
            raise PortalUnavailable(PORTAL_NOT_FOUND, f"No installed portal {member_id}.")
        if (portal.domain, portal.client_endpoint) != (domain, client_endpoint):
            record(session, member_id, "address", f"{portal.domain} -> {domain}")
            portal.domain, portal.client_endpoint = domain, client_endpoint
        return portal


class TokenStore:
    def __init__(
        self,
        session_factory: sessionmaker,
        cipher: TokenCipher,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        self.session_factory = session_factory
        self.cipher = cipher
        self.clock = clock
        # member_id -> (the access token last read or refreshed here, its ciphertext), least recently
        # used first. Calls use it without touching the database until it is near expiry or
        # Bitrix24 refuses it.
        self._remembered: OrderedDict[str, tuple[AccessToken, str]] = OrderedDict()
        self._remembered_lock = threading.Lock()
        self.max_remembered = MAX_REMEMBERED_TOKENS

    # --- writing -------------------------------------------------------------------------

    def save_tokens(self, session: Session, portal: Portal, tokens: TokenSet) -> None:
        """Replace the portal's pair inside the caller's transaction."""
        self.forget(portal.member_id)
        row = portal.token
        if row is None:
            row = portal.token = PortalToken(version=0)
        row.access_token_encrypted = self.cipher.encrypt(tokens.access_token)
        row.refresh_token_encrypted = self.cipher.encrypt(tokens.refresh_token)
        row.expires_at = tokens.expires_at
        if tokens.user_id is not None:
            row.user_id = tokens.user_id
        row.version = (row.version or 0) + 1
        row.refreshed_at = self.clock()

    def set_application_token(self, portal: Portal, application_token: str) -> None:
        portal.application_token_encrypted = self.cipher.encrypt(application_token)

    def stored_refresh_token(self, portal: Portal) -> str | None:
        """The refresh token to keep when Bitrix24 sent none (ONAPPUPDATE)."""
        return self.cipher.decrypt(portal.token.refresh_token_encrypted) if portal.token else None

    def application_token(self, portal: Portal) -> str | None:
        if not portal.application_token_encrypted:
            return None
        return self.cipher.decrypt(portal.application_token_encrypted)

    # --- reading -------------------------------------------------------------------------

    def current(self, member_id: str) -> AccessToken:
        """The stored access token, read now (PortalUnavailable if the portal cannot be used)."""
        with self.session_factory() as session:
            portal = portal_by_member_id(session, member_id, with_token=True)
            row = self._usable_token(portal, member_id)
            return self._remember(member_id, row)

    def take_read(self, portal: Portal) -> None:
        """Remember the token of a portal row read a moment ago with its token (`with_token`), as
        `current` would have read it: the client built for it sends that token without a second read."""
        if "token" in inspect(portal).unloaded or portal.status != PortalStatus.ACTIVE or portal.token is None:
            return
        self._remember(portal.member_id, portal.token)

    def remembered(self, member_id: str) -> AccessToken:
        """The token this process last read or refreshed for the portal; read again only when it is
        unknown or near expiry. Whoever gets it refused by Bitrix24 reads `current` again: a token
        another process refreshed meanwhile is picked up then."""
        known = self._known(member_id)
        if known is None or known[0].is_expired(self.clock()):
            return self.current(member_id)
        return known[0]

    def forget(self, member_id: str) -> None:
        with self._remembered_lock:
            self._remembered.pop(member_id, None)

    def _known(self, member_id: str) -> tuple[AccessToken, str] | None:
        with self._remembered_lock:
            known = self._remembered.get(member_id)
            if known is not None:
                self._remembered.move_to_end(member_id)
            return known

    def _keep(self, member_id: str, token: AccessToken, ciphertext: str) -> None:
        with self._remembered_lock:
            known = self._remembered.get(member_id)
            if known is not None and known[0].version > token.version and known[0].expires_at > token.expires_at:
                return  # read before another thread's refresh committed: keep the newer token
            self._remembered[member_id] = (token, ciphertext)
            self._remembered.move_to_end(member_id)
            while len(self._remembered) > self.max_remembered:
                self._remembered.popitem(last=False)

    def stored_pair(self, member_id: str) -> StoredPair | None:
        with self.session_factory() as session:
            portal = portal_by_member_id(session, member_id, with_token=True)
            if portal is None or portal.token is None:
                return None
            row = portal.token
            return StoredPair(self.cipher.decrypt(row.access_token_encrypted), row.version,
                              row.access_token_encrypted, portal.status, portal.client_endpoint)

    def refresh_token(self, member_id: str) -> str:
        """Only for the CLI `portals refresh`; never leaves the process."""
        with self.session_factory() as session:
            portal = portal_by_member_id(session, member_id)
            return self.cipher.decrypt(self._usable_token(portal, member_id).refresh_token_encrypted)

    # --- single-flight refresh -----------------------------------------------------------

    def refresh(self, member_id: str, stale_version: int, refresh: Callable[[str], TokenSet], *,
                whatever_the_status: bool = False) -> AccessToken:
        """Refresh unless another worker already replaced the token we found stale.

        `whatever_the_status` also tries a portal marked payment_required or needs_reauth: the
        uninstall probe asks the authorization server whether it still knows the pair."""
        failure: OAuthError | None = None
        with self.session_factory() as session, session.begin():
            portal = self.lock_portal_token(session, member_id)
            usable = whatever_the_status and portal.token is not None
            row = portal.token if usable else self._usable_token(portal, member_id)
            if row.version == stale_version:
                try:
                    tokens = refresh(self.cipher.decrypt(row.refresh_token_encrypted))
                except OAuthError as exc:
                    # Commit the failure (needs_reauth, payment) instead of rolling it back.
                    self._mark_refresh_failure(session, row.portal, exc)
                    failure = exc
                else:
                    self.save_tokens(session, row.portal, tokens)
                    row.portal.status = PortalStatus.ACTIVE  # a pair that refreshes works again
                    record(session, member_id, "refresh")
            fresh, ciphertext = self._access_token(row), row.access_token_encrypted
        if failure is not None:
            raise failure
        self._keep(member_id, fresh, ciphertext)  # only once committed
        return fresh

    def lock_portal_token(self, session: Session, member_id: str) -> Portal:
        """The portal with its token row (if any) locked until the caller's transaction ends."""
        self.forget(member_id)  # whatever the caller changes, this process reads it again
        portal_id = session.scalar(select(Portal.id).where(Portal.member_id == member_id))
        if portal_id is None:
            raise PortalUnavailable(PORTAL_NOT_FOUND, f"No installed portal {member_id}.")
        if session.get_bind().dialect.name == "sqlite":
            # SQLite has no row locks: a no-op write takes the database write lock up front.
            session.execute(
                update(PortalToken).where(PortalToken.portal_id == portal_id).values(version=PortalToken.version)
            )
        session.scalars(select(PortalToken).where(PortalToken.portal_id == portal_id).with_for_update()).first()
        return session.get(Portal, portal_id)

    def _mark_refresh_failure(self, session: Session, portal: Portal, exc: OAuthError) -> None:
        if exc.code in REAUTH_OAUTH_CODES:
            portal.status = PortalStatus.NEEDS_REAUTH
        elif exc.code == "PAYMENT_REQUIRED":
            portal.status = PortalStatus.PAYMENT_REQUIRED
        record(session, portal.member_id, "refresh_failed", exc.code)

    # --- helpers -------------------------------------------------------------------------

    def _usable_token(self, portal: Portal | None, member_id: str) -> PortalToken:
        if portal is None:
            raise PortalUnavailable(PORTAL_NOT_FOUND, f"No installed portal {member_id}.")
        if portal.status == PortalStatus.UNINSTALLED or portal.token is None:
            raise PortalUnavailable(PORTAL_UNINSTALLED, f"The app is not installed on {portal.domain}.")
        if portal.status == PortalStatus.NEEDS_REAUTH:
            raise PortalUnavailable(
                PORTAL_NEEDS_REAUTH,
                f"The stored authorization for {portal.domain} stopped working; "
                "an administrator of the portal must open the app once to renew it.",
            )
        if portal.status == PortalStatus.PAYMENT_REQUIRED:
            raise PortalUnavailable(
                PORTAL_PAYMENT_REQUIRED, f"The app's subscription on {portal.domain} has to be paid."
            )
        return portal.token

    def _remember(self, member_id: str, row: PortalToken) -> AccessToken:
        """The row's token, decrypted only if it is not the one remembered (same version and ciphertext:
        a reinstall starts again at version 1)."""
        known = self._known(member_id)
        if known is not None and (known[0].version, known[1]) == (row.version, row.access_token_encrypted):
            token = AccessToken(known[0].value, row.version, as_utc(row.expires_at))
        else:
            token = self._access_token(row)
        self._keep(member_id, token, row.access_token_encrypted)
        return token

    def _access_token(self, row: PortalToken) -> AccessToken:
        return AccessToken(
            value=self.cipher.decrypt(row.access_token_encrypted),
            version=row.version,
            expires_at=as_utc(row.expires_at),
        )
