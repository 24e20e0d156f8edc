"""Short-lived signed session tokens for the tab's JSON API (no cookies inside the iframe).

`POST /app` authenticates the Bitrix24 user, then issues a token bound to the portal
(`member_id`), the user id and what the user may do. The page sends it back as
`Authorization: Bearer <token>`; a token can only ever act on its own portal.

Signing is itsdangerous' `URLSafeTimedSerializer` (HMAC with the app's SECRET_KEY and a
purpose-specific salt), so a token expires after `ttl` seconds and cannot be altered.

Re-authorization: when an administrator opens the tab of a portal whose stored token stopped
working, the token also carries a *reseed grant*: the administrator's own AUTH_ID/REFRESH_ID,
encrypted with the app's token cipher (Fernet). The browser holds only ciphertext it cannot
read; `POST /api/reseed` decrypts it server-side. Plain Python: no Flask.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from .crypto import TokenCipher, TokenCipherError

SALT = "bitrix-app.tab-session.v1"


class SessionTokenError(Exception):
    """The token is missing, expired or not ours. `code` is SESSION_EXPIRED or SESSION_INVALID."""

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
    reseed_grant: str | None = None  # encrypted admin authorization, see module docstring

    def __repr__(self) -> str:
        return f"TabSession(member_id={self.member_id!r}, user_id={self.user_id}, is_admin={self.is_admin})"


@dataclass(frozen=True)
class ReseedGrant:
    access_token: str
    refresh_token: str
    expires_in: int

    def __repr__(self) -> str:
        return f"ReseedGrant(expires_in={self.expires_in})"


class SessionTokens:
    def __init__(self, secret_key: str, ttl: int, cipher: TokenCipher, clock: Callable[[], float] = time.time):
        if not secret_key:
            raise ValueError("SECRET_KEY is required to sign session tokens.")
        self.ttl = ttl
        self.cipher = cipher
        signer = type("ClockSigner", (TimestampSigner,), {"get_timestamp": lambda _self: int(clock())})
        self.serializer = URLSafeTimedSerializer(secret_key, salt=SALT, signer=signer)

    def issue(self, session: TabSession) -> str:
        payload = {
            "m": session.member_id,
            "u": session.user_id,
            "a": session.is_admin,
            "e": session.can_edit,
            "l": session.lang,
        }
        if session.reseed_grant:
            payload["g"] = session.reseed_grant
        return self.serializer.dumps(payload)

    def read(self, token: str) -> TabSession:
        try:
            payload = self.serializer.loads(token, max_age=self.ttl)
        except SignatureExpired:
            raise SessionTokenError("SESSION_EXPIRED") from None
        except BadData:
            raise SessionTokenError("SESSION_INVALID") from None
        try:
            return TabSession(
                member_id=str(payload["m"]),
                user_id=int(payload["u"]),
                is_admin=payload["a"] is True,
                can_edit=payload["e"] is True,
                lang=str(payload.get("l") or "en"),
                reseed_grant=payload.get("g"),
            )
        except (KeyError, TypeError, ValueError):
            raise SessionTokenError("SESSION_INVALID") from None

    # --- the administrator's authorization for one-click re-seeding ------------------------

    def seal_grant(self, access_token: str, refresh_token: str, expires_in: int) -> str:
        return self.cipher.encrypt(json.dumps({"a": access_token, "r": refresh_token, "e": int(expires_in)}))

    def open_grant(self, sealed: str) -> ReseedGrant:
        try:
            values = json.loads(self.cipher.decrypt(sealed))
            return ReseedGrant(str(values["a"]), str(values["r"]), int(values["e"]))
        except (TokenCipherError, ValueError, KeyError, TypeError):
            raise SessionTokenError("SESSION_INVALID") from None
