"""The one error type for everything that goes wrong talking to Bitrix24.

Messages never contain tokens: only the method, the Bitrix24 code and its description.
"""
from __future__ import annotations


class BitrixError(Exception):
    """A failed Bitrix24 call: HTTP status (if any), Bitrix24 error code and description."""

    def __init__(
        self,
        code: str,
        description: str = "",
        *,
        status: int | None = None,
        method: str | None = None,
        reset_at: float | None = None,
    ):
        self.code = str(code) if code not in (None, "", 0, "0") else "BITRIX_ERROR"
        self.description = description or ""
        self.status = status
        self.method = method
        self.reset_at = reset_at  # OPERATION_TIME_LIMIT: Unix time the method is usable again
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.method}: " if self.method else ""
        status = f" (HTTP {self.status})" if self.status else ""
        return f"{where}{self.code}: {self.description}{status}"

    def to_dict(self) -> dict:
        return {"error": self.code, "error_description": self.description}


class OAuthError(BitrixError):
    """The authorization server refused a token request (invalid_grant, invalid_client, PAYMENT_REQUIRED...)."""


class PortalUnavailable(BitrixError):
    """The portal is unknown, uninstalled or needs re-authorization: no call was sent."""


# Codes of PortalUnavailable
PORTAL_NOT_FOUND = "PORTAL_NOT_FOUND"
PORTAL_UNINSTALLED = "PORTAL_UNINSTALLED"
PORTAL_NEEDS_REAUTH = "PORTAL_NEEDS_REAUTH"
PORTAL_PAYMENT_REQUIRED = "PAYMENT_REQUIRED"


class Rejected(Exception):
    """A request from outside (installer POST, event, iframe open) that we refuse.

    Carries what the web tier needs for a clear answer: HTTP status, machine-readable code and
    a sentence a person understands.
    """

    def __init__(self, status: int, code: str, description: str):
        self.status = status
        self.code = code
        self.description = description
        super().__init__(f"{code}: {description}")
