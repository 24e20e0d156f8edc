"""OAuth token chains: issue, rotate (single use), revoke, expire.

A chain starts with an install, an iframe open, an event or an authorization code, and then
continues only through refresh grants. Each refresh returns a new pair; the refresh token used
and the access token issued with it die when the refresh completes. A chain never branches:
of two concurrent refreshes of one token, exactly one wins.
"""
from __future__ import annotations

import time

from .config import FakeConfig
from .state import AccessToken, AuthCode, Portal, RefreshToken, State, new_token


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


def invalid_grant(config: FakeConfig) -> OAuthError:
    return OAuthError("invalid_grant", "Invalid grant", config.invalid_grant_status)


def issue_pair(state: State, config: FakeConfig, portal: Portal, user_id: int,
               client_id: str | None = None, scope: str | None = None) -> tuple[AccessToken, RefreshToken]:
    client_id = client_id or state.main_client_id
    scope = scope if scope is not None else state.apps[client_id].scope
    now = state.clock.now()
    access = AccessToken(new_token(), portal.member_id, user_id, client_id, scope, now + config.access_ttl)
    refresh = RefreshToken(new_token(), portal.member_id, user_id, client_id, scope,
                           now + config.refresh_ttl, access_token=access.value)
    with state.lock:
        state.access_tokens[access.value] = access
        state.refresh_tokens[refresh.value] = refresh
    return access, refresh


def token_response(state: State, config: FakeConfig, portal: Portal, access: AccessToken,
                   refresh: RefreshToken, legacy: bool | None = None) -> dict:
    """The body of a successful token-endpoint answer (reference 3.5)."""
    body = {
        "access_token": access.value,
        "expires": int(access.expires_at),
        "expires_in": config.access_ttl,
        "scope": access.scope,
        "domain": state.oauth_domain,
        "server_endpoint": state.server_endpoint,
        "status": portal.app_status,
        "client_endpoint": portal.client_endpoint,
        "member_id": portal.member_id,
        "user_id": access.user_id,
        "refresh_token": refresh.value,
    }
    if config.token_response_legacy if legacy is None else legacy:
        del body["expires"], body["user_id"]
    return body


def check_client(state: State, config: FakeConfig, client_id: str | None, client_secret: str | None) -> None:
    app = state.apps.get(client_id or "")
    if app is None or app.client_secret != client_secret:
        raise OAuthError("invalid_client", "Invalid client credentials", config.invalid_client_status)


def refresh_grant(state: State, config: FakeConfig, client_id: str, refresh_value: str) -> dict:
    with state.lock:
        refresh = _claim_refresh_token(state, config, client_id, refresh_value)
        portal = state.portals[refresh.member_id]
    if config.refresh_latency:
        time.sleep(config.refresh_latency)  # outside the lock: other requests keep flowing
    with state.lock:
        if refresh.status != "claimed":  # revoked by an uninstall while we slept
            raise invalid_grant(config)
        refresh.status = "used"
        old_access = state.access_tokens.get(refresh.access_token)
        if old_access is not None and old_access.status == "live":
            old_access.status = "rotated"
        access, new_refresh = issue_pair(state, config, portal, refresh.user_id, refresh.client_id, refresh.scope)
        portal.refresh_count += 1
        return token_response(state, config, portal, access, new_refresh)


def _claim_refresh_token(state: State, config: FakeConfig, client_id: str, refresh_value: str) -> RefreshToken:
    refresh = state.refresh_tokens.get(refresh_value or "")
    if refresh is None:
        raise invalid_grant(config)
    portal = state.portals[refresh.member_id]
    usable = (refresh.client_id == client_id and refresh.status == "live"
              and refresh.expires_at > state.clock.now())
    if not usable or not state.is_app_installed(portal, client_id):
        raise invalid_grant(config)
    if portal.payment_required:
        raise OAuthError("PAYMENT_REQUIRED", "Payment required", config.payment_required_status)
    refresh.status = "claimed"
    return refresh


def issue_auth_code(state: State, config: FakeConfig, portal: Portal, user_id: int) -> str:
    code = AuthCode(new_token(), portal.member_id, user_id, state.main_client_id,
                    state.clock.now() + config.auth_code_ttl)
    with state.lock:
        state.auth_codes[code.value] = code
    return code.value


def code_grant(state: State, config: FakeConfig, client_id: str, code_value: str) -> dict:
    with state.lock:
        code = state.auth_codes.get(code_value or "")
        if code is None:
            raise invalid_grant(config)
        portal = state.portals[code.member_id]
        if code.used or code.client_id != client_id or code.expires_at <= state.clock.now():
            raise invalid_grant(config)
        if not state.is_app_installed(portal, client_id):
            raise invalid_grant(config)
        code.used = True
        access, refresh = issue_pair(state, config, portal, code.user_id, client_id)
        return token_response(state, config, portal, access, refresh)


def portal_of_grant(state: State, refresh_value: str | None, code_value: str | None) -> Portal | None:
    """The portal a token request is about, if its refresh token or code is known."""
    token = state.refresh_tokens.get(refresh_value or "") or state.auth_codes.get(code_value or "")
    return state.portals.get(token.member_id) if token else None


def revoke_app_tokens(state: State, portal: Portal, client_id: str) -> None:
    with state.lock:
        for token in (*state.access_tokens.values(), *state.refresh_tokens.values()):
            if token.member_id == portal.member_id and token.client_id == client_id:
                token.status = "revoked"


def expire_access_tokens(state: State, portal: Portal | None = None) -> None:
    with state.lock:
        now = state.clock.now()
        for token in state.access_tokens.values():
            if portal is None or token.member_id == portal.member_id:
                token.expires_at = min(token.expires_at, now - 1)
