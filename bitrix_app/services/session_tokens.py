"""Short-lived signed session tokens for the tab's JSON API (no cookies inside the iframe).

`POST /app` authenticates the Bitrix24 user, then issues a token bound to the app (`aud`), the
portal (`member_id`) and its install generation, the user id and what the user may do. The page
sends it back as `Authorization: Bearer <token>`; a token can only ever act on its own portal's
current installation. It lives minutes (`ttl`); the page renews it with a fresh Bitrix24
authorization of the same user (api.py), up to RENEWAL_GRACE after it expired.

Signing is itsdangerous' `URLSafeTimedSerializer` (HMAC with a purpose-specific salt) over a list
of keys: the first signs, all verify, so SECRET_KEY can be rotated by putting a new key first.

Re-authorization: when an administrator opens the tab of a portal whose stored token stopped
working, their own AUTH_ID/REFRESH_ID are kept server-side (`ReseedGrants`, encrypted, minutes,
single use) and the token carries only a random handle to them. Plain Python: no Flask.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Callable

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from ..models import Portal, ReseedGrantRecord
from .crypto import TokenCipher, TokenCipherError

SALT = "bitrix-app.tab-session.v2"
RENEWAL_GRACE = 3600  # seconds after expiry a token may still be renewed (a laptop that slept)
GRANT_SECONDS = 600


class SessionTokenError(Exception):
    """The token is missing, expired or not ours. `code` is SESSION_EXPIRED, SESSION_INVALID or
    SESSION_REVOKED (the app was reinstalled since)."""

    def __init__(self, code: str):
        self.code = code
        super().__init__(code)


@dataclass(frozen=True)
class TabSession:
    member_id: str
    user_id: int
    is_admin: bool
    can_edit: bool  # at issue time; changes are re-checked against the database
    lang: str = "en"
    reseed_grant: str | None = None  # handle of a ReseedGrants entry, see module docstring
    generation: int = 0  # the portal's install_generation when the session was issued

    def __repr__(self) -> str:
        return f"TabSession(member_id={self.member_id!r}, user_id={self.user_id}, is_admin={self.is_admin})"


class SessionTokens:
    def __init__(self, secret_keys: list[str], ttl: int, audience: str, clock: Callable[[], float] = time.time):
        if not secret_keys or not all(secret_keys):
            raise ValueError("SECRET_KEY is required to sign session tokens.")
        self.ttl = ttl
        self.audience = audience
        signer = type("ClockSigner", (TimestampSigner,), {"get_timestamp": lambda _self: int(clock())})
        # itsdangerous signs with the *last* key; ours reads like TOKEN_ENCRYPTION_KEYS: the first signs.
        self.serializer = URLSafeTimedSerializer(list(reversed(secret_keys)), salt=SALT, signer=signer)

    def issue(self, session: TabSession) -> str:
        payload = {
            "aud": self.audience,
            "m": session.member_id,
            "n": session.generation,
            "u": session.user_id,
            "a": session.is_admin,
            "e": session.can_edit,
            "l": session.lang,
        }
        if session.reseed_grant:
            payload["g"] = session.reseed_grant
        return self.serializer.dumps(payload)

    def read(self, token: str, renewing: bool = False) -> TabSession:
        """The session in a token; `renewing` also accepts one that expired up to RENEWAL_GRACE ago."""
        try:
            payload = self.serializer.loads(token, max_age=self.ttl + (RENEWAL_GRACE if renewing else 0))
        except SignatureExpired:
            raise SessionTokenError("SESSION_EXPIRED") from None
        except BadData:
            raise SessionTokenError("SESSION_INVALID") from None
        try:
            if payload["aud"] != self.audience:
                raise ValueError("another audience")
            return TabSession(
                member_id=str(payload["m"]),
                user_id=int(payload["u"]),
                is_admin=payload["a"] is True,
                can_edit=payload["e"] is True,
                lang=str(payload.get("l") or "en"),
                reseed_grant=payload.get("g"),
                generation=int(payload["n"]),
            )
        except (KeyError, TypeError, ValueError):
            raise SessionTokenError("SESSION_INVALID") from None


# --- the administrator's authorization for one-click re-seeding, kept server-side ---------------

@dataclass(frozen=True)
class ReseedGrant:
    access_token: str
    refresh_token: str
    expires_in: int

    def __repr__(self) -> str:
        return f"ReseedGrant(expires_in={self.expires_in})"


class ReseedGrants:
    """Kept for GRANT_SECONDS, usable once, and only by the same user of the same portal."""

    def __init__(self, session_factory: sessionmaker[Session], cipher: TokenCipher,
                 clock: Callable[[], float] = time.time):
        self.session_factory = session_factory
        self.cipher = cipher
        self.clock = clock

    def keep(self, member_id: str, user_id: int, grant: ReseedGrant) -> str:
        """Store the grant; returns its handle (the only part that reaches the browser)."""
        handle = secrets.token_urlsafe(32)
        sealed = self.cipher.encrypt(json.dumps({"a": grant.access_token, "r": grant.refresh_token,
                                                 "e": int(grant.expires_in)}))
        now = self.clock()
        with self.session_factory() as db, db.begin():
            db.execute(delete(ReseedGrantRecord).where(ReseedGrantRecord.expires_at <= now))
            portal_id = db.scalar(select(Portal.id).where(Portal.member_id == member_id))
            db.add(ReseedGrantRecord(handle=handle, portal_id=portal_id, user_id=user_id,
                                     authorization_encrypted=sealed, expires_at=now + GRANT_SECONDS))
        return handle

    def take(self, handle: str, member_id: str, user_id: int) -> ReseedGrant | None:
        """The grant, deleted as it is read (None: unknown, used, expired or someone else's)."""
        with self.session_factory() as db, db.begin():
            record = db.scalar(select(ReseedGrantRecord).join(Portal).where(
                ReseedGrantRecord.handle == handle, Portal.member_id == member_id,
                ReseedGrantRecord.user_id == user_id))
            if record is None:
                return None
            sealed, expires_at = record.authorization_encrypted, record.expires_at
            taken = db.execute(delete(ReseedGrantRecord).where(ReseedGrantRecord.handle == handle)).rowcount
        if taken != 1 or expires_at <= self.clock():  # 0: another request took it first
            return None
        return self._open(sealed)

    def _open(self, sealed: str) -> ReseedGrant | None:
        try:
            values = json.loads(self.cipher.decrypt(sealed))
            return ReseedGrant(str(values["a"]), str(values["r"]), int(values["e"]))
        except (TokenCipherError, ValueError, KeyError, TypeError):
            return None
