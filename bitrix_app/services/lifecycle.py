"""Installation and app events: verify, store, bind. Plain Python; the blueprints only translate HTTP.

Nothing from an install POST or an event is trusted until the authorization server confirms the
token (app.info on the *configured* OAuth host) or the stored application token matches. An
uninstall also needs Bitrix24's definitive refusal of the stored tokens, since every portal user
knows the application token.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..models import (ChangeRecord, ConnectorSecretSettings, Database, GatewayConnector, Portal, PortalHistory,
                      PortalStatus, PortalUserName)
from .bitrix import Bitrix
from .errors import BitrixError, OAuthError, PortalUnavailable, Rejected
from .oauth import AppInfo, TokenSet
from .tokens import StoredPair, portal_by_member_id, record

BOUND_EVENTS = ("ONAPPUNINSTALL", "ONAPPUPDATE")


@dataclass(frozen=True)
class Authorization:
    """Tokens handed to us by Bitrix24 (installer POST or an event's auth block)."""

    member_id: str
    access_token: str
    refresh_token: str
    expires_in: int
    application_token: str
    scope: str = ""

    def __repr__(self) -> str:
        return f"Authorization(member_id={self.member_id!r})"


MAX_TOKEN_LIFETIME = 24 * 3600  # Bitrix24 says 3600; anything far beyond it is nonsense input


def token_lifetime(value) -> int:
    """AUTH_EXPIRES / expires_in as sent by Bitrix24, clamped to something sane."""
    try:
        return min(max(0, int(value)), MAX_TOKEN_LIFETIME)
    except (TypeError, ValueError, OverflowError):
        return 3600


def authorization_from(values: dict, *, names: dict[str, str], optional: frozenset[str] = frozenset()) -> Authorization:
    """Build an Authorization from a dict, renaming keys (installer POST vs event auth block).
    An `optional` key that is absent becomes ""."""
    missing = [outer for outer in names if outer not in optional and not values.get(outer)]
    if missing:
        raise Rejected(400, "MISSING_FIELDS", "The request lacks required fields: " + ", ".join(sorted(missing)) + ".")
    picked = {inner: values.get(outer) or "" for outer, inner in names.items()}
    picked["expires_in"] = token_lifetime(picked.get("expires_in"))
    return Authorization(scope=str(values.get("APPLICATION_SCOPE") or values.get("scope") or ""), **picked)


INSTALLER_FIELDS = {
    "member_id": "member_id",
    "AUTH_ID": "access_token",
    "REFRESH_ID": "refresh_token",
    "AUTH_EXPIRES": "expires_in",
    "APPLICATION_TOKEN": "application_token",
}
EVENT_AUTH_FIELDS = {
    "member_id": "member_id",
    "access_token": "access_token",
    "refresh_token": "refresh_token",
    "expires_in": "expires_in",
    "application_token": "application_token",
}


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input (compare_digest on str does not)."""
    return hmac.compare_digest(presented.encode(), expected.encode())


def verify(bitrix: Bitrix, access_token: str, member_id: str) -> AppInfo:
    """The token must be ours, for this portal, and its portal endpoint acceptable."""
    try:
        info = bitrix.oauth.app_info(access_token)
    except OAuthError:
        raise Rejected(401, "INVALID_AUTH", "Bitrix24 did not confirm this authorization; the request was ignored.") from None
    if not same_secret(info.client_id, bitrix.settings.client_id):
        raise Rejected(403, "WRONG_APPLICATION", "The authorization was issued for another application.")
    if not same_secret(info.member_id, member_id):
        raise Rejected(403, "MEMBER_ID_MISMATCH", "The authorization belongs to a different portal than the request claims.")
    if not bitrix.settings.is_acceptable_url(info.client_endpoint):
        raise Rejected(400, "INSECURE_ENDPOINT",
                       "The portal's REST endpoint is not an https URL on a public address.")
    return info


def require_admin(bitrix: Bitrix, info: AppInfo, access_token: str) -> None:
    try:
        is_admin = bitrix.user_client(info.client_endpoint, access_token).call("user.admin")
    except BitrixError:
        raise Rejected(502, "PORTAL_UNREACHABLE", "The portal did not answer; please try again.") from None
    if is_admin is not True:
        raise Rejected(403, "NOT_ADMIN", "Only a portal administrator can install the application.")


def install(bitrix: Bitrix, auth: Authorization) -> Portal:
    """Installer POST or ONAPPINSTALL: verify, then create or update the portal and its tokens."""
    info = verify(bitrix, auth.access_token, auth.member_id)
    require_admin(bitrix, info, auth.access_token)
    portal = store_authorization(bitrix, info, auth, kind="install")
    bind_events(bitrix, portal.member_id)
    return portal


def store_authorization(bitrix: Bitrix, info: AppInfo, auth: Authorization, *, kind: str) -> Portal:
    with bitrix.session_factory() as session, session.begin():
        portal = portal_by_member_id(session, auth.member_id)
        if portal is None:
            portal = Portal(member_id=auth.member_id, editor_user_ids=[])
            session.add(portal)
        elif kind == "install" and portal.status != PortalStatus.UNINSTALLED:
            kind = "reinstall"
        if kind in ("install", "reinstall"):  # tab sessions of an earlier installation end
            portal.install_generation = (portal.install_generation or 0) + 1
        tokens = _tokens_to_store(bitrix, portal, info, auth)
        portal.domain = info.domain
        portal.client_endpoint = info.client_endpoint
        portal.server_endpoint = bitrix.settings.oauth_rest_url
        portal.scope = auth.scope or info.scope
        portal.status = PortalStatus.ACTIVE
        if auth.application_token:
            bitrix.tokens.set_application_token(portal, auth.application_token)
        bitrix.tokens.save_tokens(session, portal, tokens)
        kept = "" if auth.refresh_token else ", refresh token kept"
        record(session, portal.member_id, kind, f"user {info.user_id}{kept}")
    return portal


def _tokens_to_store(bitrix: Bitrix, portal: Portal, info: AppInfo, auth: Authorization) -> TokenSet:
    """The new access token, with the stored refresh token when none came (ONAPPUPDATE)."""
    refresh_token = auth.refresh_token or bitrix.tokens.stored_refresh_token(portal)
    if not refresh_token:
        raise Rejected(400, "MISSING_FIELDS", "The request lacks required fields: refresh_token.")
    return TokenSet(
        access_token=auth.access_token,
        refresh_token=refresh_token,
        expires_at=datetime.now(timezone.utc) + timedelta(seconds=auth.expires_in),
        user_id=info.user_id,
    )


def reseed(bitrix: Bitrix, member_id: str, access_token: str, refresh_token: str, expires_in) -> Portal:
    """An administrator's own authorization replaces a stored token that stopped working."""
    info = verify(bitrix, access_token, member_id)
    require_admin(bitrix, info, access_token)
    auth = Authorization(member_id, access_token, refresh_token, token_lifetime(expires_in), application_token="")
    return store_authorization(bitrix, info, auth, kind="reseed")


def bind_events(bitrix: Bitrix, member_id: str) -> None:
    """Bind our lifecycle handlers unless already bound (event.bind twice is unconfirmed)."""
    client = bitrix.client(member_id)
    handler = f"{bitrix.settings.public_url}/events"
    bound = {(item.get("event", "").upper(), item.get("handler")) for item in client.call("event.get") or []}
    for event in BOUND_EVENTS:
        if (event, handler) not in bound:
            client.call("event.bind", {"event": event, "handler": handler})


def handle_event(bitrix: Bitrix, payload: dict) -> str:
    """Authenticate and apply one form-decoded Bitrix24 event. Returns what was done."""
    event = str(payload.get("event") or "").upper()
    auth = payload.get("auth") if isinstance(payload.get("auth"), dict) else {}
    member_id = str(auth.get("member_id") or "")
    if not event or not member_id:
        raise Rejected(400, "MALFORMED_EVENT", "The event lacks its name or auth[member_id].")
    if event == "ONAPPINSTALL":
        install(bitrix, authorization_from(auth, names=EVENT_AUTH_FIELDS))
        return "installed"
    token_matches = _application_token_matches(bitrix, member_id, str(auth.get("application_token") or ""))
    if event == "ONAPPUPDATE":
        return _update(bitrix, auth, token_matches)
    if not token_matches:
        raise Rejected(401, "INVALID_APPLICATION_TOKEN", "The event's application token does not match this portal.")
    if event == "ONAPPUNINSTALL":
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        return uninstall(bitrix, member_id, clean=str(data.get("CLEAN", "0")) == "1")
    return "ignored"


def _application_token_matches(bitrix: Bitrix, member_id: str, presented: str) -> bool:
    with bitrix.session_factory() as session:
        portal = portal_by_member_id(session, member_id)
        if portal is None:
            raise Rejected(401, "UNKNOWN_PORTAL", "This portal has not installed the application.")
        stored = bitrix.tokens.application_token(portal) or ""
    return bool(presented) and same_secret(presented, stored)


def _update(bitrix: Bitrix, auth: dict, token_matches: bool) -> str:
    """ONAPPUPDATE brings a *new* application token, so a mismatch is expected: the tokens it
    carries prove its origin instead (verified with the authorization server)."""
    # Only ONAPPINSTALL surely carries a refresh token (reference 2.5); without one the stored one is kept.
    authorization = authorization_from(auth, names=EVENT_AUTH_FIELDS, optional=frozenset({"refresh_token"}))
    try:
        info = verify(bitrix, authorization.access_token, authorization.member_id)
    except Rejected:
        if token_matches:
            raise
        raise Rejected(401, "INVALID_APPLICATION_TOKEN", "The event could not be authenticated.") from None
    # Every portal user sees the application token (iframe POST); only an administrator's
    # tokens may replace the stored ones.
    require_admin(bitrix, info, authorization.access_token)
    store_authorization(bitrix, info, authorization, kind="update")
    bind_events(bitrix, authorization.member_id)  # Bitrix24 drops event handlers on update
    return "updated"


def uninstall(bitrix: Bitrix, member_id: str, clean: bool) -> str:
    """Tokens are deleted at once; the portal row stays, marked uninstalled (idempotent).

    Every portal user knows the application token, so the event alone proves nothing: only a
    definitive answer from Bitrix24 that the stored pair is dead does (`_confirm_revoked`).
    Anything else is a 409 that changes nothing and can be retried."""
    pair = bitrix.tokens.stored_pair(member_id)
    if pair is None:
        return _already_uninstalled(bitrix, member_id)
    _confirm_revoked(bitrix, member_id, pair)
    with bitrix.session_factory() as session, session.begin():
        portal = bitrix.tokens.lock_portal_token(session, member_id)
        if not pair.is_current(portal.token):  # e.g. a reinstall landed while we probed
            raise _not_confirmed("The app was authorized again while the uninstall was being checked.")
        portal.token = None
        portal.status = PortalStatus.UNINSTALLED
        portal.install_generation += 1
        if clean:
            _purge(session, portal)
        record(session, member_id, "uninstall", "clean" if clean else "")
    return "uninstalled"


def _already_uninstalled(bitrix: Bitrix, member_id: str) -> str:
    """No pair to probe. A repeated event changes nothing, and never purges: the CLEAN choice
    belonged to the event that was confirmed."""
    with bitrix.session_factory() as session:
        status = session.scalar(select(Portal.status).where(Portal.member_id == member_id))
    if status != PortalStatus.UNINSTALLED:
        raise _not_confirmed("The app holds no authorization for this portal to check the event with.")
    return "uninstalled"


def _purge(session: Session, portal: Portal) -> None:
    portal.editor_user_ids = []
    session.execute(delete(PortalHistory).where(PortalHistory.member_id == portal.member_id))
    # The databases' credentials go too; Bitrix24 may keep the sources, which then fail.
    session.execute(delete(Database).where(Database.portal_id == portal.id))
    for model in (GatewayConnector, ConnectorSecretSettings, ChangeRecord, PortalUserName):
        session.execute(delete(model).where(model.portal_id == portal.id))


# Bitrix24 revokes the app's tokens before it sends ONAPPUNINSTALL (reference 2.6, 4.6, 3.8).
APP_GONE_REST_CODES = {"APPLICATION_NOT_FOUND"}  # checked before expiry: any token of a removed app
TOKEN_REFUSED_REST_CODES = {"expired_token", "invalid_token"}  # the refresh decides
PAIR_DEAD_OAUTH_CODES = {"invalid_grant", "invalid_client"}


def _confirm_revoked(bitrix: Bitrix, member_id: str, pair: StoredPair) -> None:
    """Return only if Bitrix24 definitively refused the stored pair; otherwise raise a 409."""
    code = _rest_probe(bitrix, member_id, pair)
    if code is None:
        raise _not_confirmed("The app still has access to this portal, so this uninstall event was ignored.")
    if code in APP_GONE_REST_CODES:
        return
    # needs_reauth: the stored refresh token already failed, so failing again proves nothing.
    if code in TOKEN_REFUSED_REST_CODES and pair.portal_status != PortalStatus.NEEDS_REAUTH:
        return _confirm_by_refresh(bitrix, member_id, pair)
    raise _not_confirmed(f"Bitrix24 did not confirm that the app was removed ({code[:64]}).")


def _rest_probe(bitrix: Bitrix, member_id: str, pair: StoredPair) -> str | None:
    """The error code the portal answers the stored access token with (None: it works). Not the
    portal's own client: that one refreshes by itself and sends nothing for a payment_required
    or needs_reauth portal."""
    client = bitrix.user_client(pair.client_endpoint, pair.access_token, member_id)
    try:
        client.call("app.info")
    except BitrixError as exc:
        return exc.code
    return None


def _confirm_by_refresh(bitrix: Bitrix, member_id: str, pair: StoredPair) -> None:
    try:
        bitrix.tokens.refresh(member_id, pair.version, bitrix.oauth.refresh, whatever_the_status=True)
    except OAuthError as exc:
        if exc.code in PAIR_DEAD_OAUTH_CODES:
            return
        raise _not_confirmed(f"Bitrix24 did not confirm that the app was removed ({exc.code[:64]}).") from None
    except PortalUnavailable:
        raise _not_confirmed("The portal's stored authorization changed while the uninstall was being checked.") from None
    # The pair refreshed (or another worker had just replaced it): the app is still installed.
    raise _not_confirmed("The app still has access to this portal, so this uninstall event was ignored.")


def _not_confirmed(reason: str) -> Rejected:
    return Rejected(409, "UNINSTALL_NOT_CONFIRMED", reason + " Nothing was changed; the event can be sent again.")
