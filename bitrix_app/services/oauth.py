"""The Bitrix24 authorization server: refreshing tokens (Authlib) and verifying them (app.info)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import requests
from authlib.integrations.base_client import OAuthError as AuthlibOAuthError
from authlib.integrations.requests_client import OAuth2Session

from .errors import BitrixError, OAuthError
from .settings import BitrixSettings


@dataclass(frozen=True)
class TokenSet:
    """A fresh OAuth pair. Only the two tokens are required; the rest is optional."""

    access_token: str
    refresh_token: str
    expires_at: datetime
    user_id: int | None = None

    def __repr__(self) -> str:  # never show token values
        return f"TokenSet(user_id={self.user_id!r}, expires_at={self.expires_at!r})"


@dataclass(frozen=True)
class AppInfo:
    """What the authorization server says about an access token (app.info)."""

    client_id: str
    member_id: str
    domain: str
    client_endpoint: str
    user_id: int | None
    scope: str


def expiry_from(reply: dict, now: datetime | None = None) -> datetime:
    """Derive the expiry from `expires` (Unix time) or `expires_in`; default one hour."""
    now = now or datetime.now(timezone.utc)
    if str(reply.get("expires", "")).isdigit():
        return datetime.fromtimestamp(int(reply["expires"]), timezone.utc)
    try:
        return now + timedelta(seconds=int(reply.get("expires_in") or 3600))
    except (TypeError, ValueError):
        return now + timedelta(hours=1)


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class OAuthClient:
    def __init__(self, settings: BitrixSettings, http: requests.Session):
        self.settings = settings
        self.http = http

    def refresh(self, refresh_token: str) -> TokenSet:
        """Exchange a refresh token for a new pair. The old refresh token is spent either way."""
        method = self.settings.token_method
        # Bitrix24 wants client_id/secret as parameters (in the query string for GET).
        auth_method = "none" if method == "GET" else "client_secret_post"
        extra = {"client_secret": self.settings.client_secret} if method == "GET" else {}
        session = OAuth2Session(
            self.settings.client_id,
            self.settings.client_secret,
            token_endpoint_auth_method=auth_method,
        )
        try:
            reply = session.fetch_token(
                self.settings.token_url,
                method=method,
                grant_type="refresh_token",
                refresh_token=refresh_token,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                **extra,
            )
        except AuthlibOAuthError as exc:
            raise OAuthError(exc.error or "oauth_error", exc.description or "", method="oauth/token") from None
        except requests.HTTPError as exc:
            raise OAuthError("OAUTH_SERVER_ERROR", "The authorization server failed.",
                             status=exc.response.status_code, method="oauth/token") from None
        except requests.RequestException:
            raise OAuthError("NETWORK_ERROR", "The authorization server could not be reached.",
                             method="oauth/token") from None
        except ValueError:
            raise OAuthError("INVALID_RESPONSE", "The authorization server answered with something that is not JSON.",
                             method="oauth/token") from None
        finally:
            session.close()
        if not reply.get("access_token") or not reply.get("refresh_token"):
            raise OAuthError("INVALID_RESPONSE", "The token reply has no access or refresh token.", method="oauth/token")
        return TokenSet(
            access_token=reply["access_token"],
            refresh_token=reply["refresh_token"],
            expires_at=expiry_from(reply),
            user_id=_int_or_none(reply.get("user_id")),
        )

    def app_info(self, access_token: str) -> AppInfo:
        """Ask the configured authorization server (never a host from the request) who issued a token."""
        try:
            response = self.http.get(
                self.settings.oauth_rest_url + "app.info",
                params={"auth": access_token},
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
            )
            body = response.json()
        except requests.RequestException:
            raise OAuthError("NETWORK_ERROR", "The authorization server could not be reached.", method="app.info") from None
        except ValueError:
            raise OAuthError("INVALID_RESPONSE", "The authorization server did not answer with JSON.",
                             status=response.status_code, method="app.info") from None
        if not isinstance(body, dict) or "error" in body or not isinstance(body.get("result"), dict):
            body = body if isinstance(body, dict) else {}
            raise OAuthError(body.get("error") or "INVALID_RESPONSE", body.get("error_description", ""),
                             status=response.status_code, method="app.info")
        result = body["result"]
        install = result.get("install") or {}
        return AppInfo(
            client_id=str(result.get("client_id") or ""),
            member_id=str(install.get("member_id") or ""),
            domain=str(install.get("domain") or ""),
            client_endpoint=str(install.get("client_endpoint") or ""),
            user_id=_int_or_none(result.get("user_id")),
            scope=str(result.get("scope") or install.get("scope") or ""),
        )


__all__ = ["OAuthClient", "TokenSet", "AppInfo", "BitrixError", "OAuthError", "expiry_from"]
