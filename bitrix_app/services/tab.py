"""What the embedded tab can do, as plain Python: list, read and change connectors and sources,
and manage who may edit.

Every Bitrix24 call goes through the portal's *stored* token (`bitrix.biconnector(member_id)`),
never the iframe user's. The session decides which portal (its `member_id`), so a session of
portal A cannot reach portal B's objects. Permission to change is re-read from the database on
every change. Source setting values are secrets: no method here returns them.

Raises `Rejected` (our own refusals: 400/403/409; `Throttled` 429/503), `InvalidFields`
(validation; 403 for endpoint URLs a non-administrator may not change) or `BitrixError` (Bitrix24
refused or failed, or `RateLimited`); the web tier turns them into HTTP answers.
"""
from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass, replace
from typing import Mapping

from ..logging_setup import escaped
from ..models import Portal, PortalStatus
from . import lifecycle
from .biconnector import Biconnector, Connector, Source, normalize_settings
from .bitrix import Bitrix
from .errors import PORTAL_UNINSTALLED, BitrixError, PortalUnavailable, Rejected
from .messages import explain, field_message, text
from .ratelimit import RateLimited
from .rest import BitrixClient
from .session_tokens import ReseedGrant, ReseedGrants, SessionTokenError, TabSession
from .tokens import portal_by_member_id
from .validation import URL_FIELDS, FieldError, connector_errors, is_integer, source_errors

SOURCE_PUBLIC_FIELDS = (
    "id", "title", "description", "type", "code", "active", "connectorId",
    "dateCreate", "dateUpdate", "createdById", "updatedById",
)
MAX_EDITORS = 500
log = logging.getLogger(__name__)
# Compared with when a member_id has no application token, so that an unknown portal takes as long.
DUMMY_APPLICATION_TOKEN = secrets.token_hex(16)
# Errors of a user's AUTH_ID that mean "not accepted" rather than "portal unreachable".
AUTH_REFUSED_CODES = {"expired_token", "invalid_token", "NO_AUTH_FOUND", "authorization_error",
                      "user_access_error", "APPLICATION_NOT_FOUND", "insufficient_scope", "ACCESS_DENIED"}


class InvalidFields(Rejected):
    """Input that fails validation (or, with 403, fields the user may not change); `errors` says
    which field and why (shown next to the field)."""

    def __init__(self, errors: list[FieldError], lang: str = "en", status: int = 400,
                 summary: str = "INVALID_FIELDS"):
        self.errors = errors
        super().__init__(status, errors[0].code, text(summary, lang))

    def fields(self, lang: str = "en") -> list[dict]:
        return [{"field": e.field, "code": e.code, "message": field_message(e, lang)} for e in self.errors]


class Throttled(Rejected):
    """A request refused by admission control (services/ratelimit.py): try again after `retry_after` s."""

    def __init__(self, limited: RateLimited, lang: str = "en"):
        self.retry_after = limited.retry_after
        super().__init__(limited.status, limited.code, explain(limited, lang))


def parse_id(raw, lang: str = "en") -> int:
    """Object ids from the URL: positive integers only (what Bitrix24 would accept anyway)."""
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 10 and int(raw) > 0:
        return int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
        return raw
    raise Rejected(400, "VALIDATION_INVALID_ID_FORMAT", text("VALIDATION_INVALID_ID_FORMAT", lang))


# --- opening the tab (POST /app) -------------------------------------------------------------

@dataclass(frozen=True)
class TabUser:
    """Who opened the tab, as the portal's own REST endpoint confirmed it."""

    member_id: str
    user_id: int
    name: str
    is_admin: bool
    can_edit: bool
    portal_domain: str
    client_endpoint: str
    portal_status: str
    install_generation: int = 0


def authenticate_opening(bitrix: Bitrix, form: Mapping, lang: str = "en", client_address: str = "",
                         query: Mapping | None = None) -> TabUser:
    """Check an iframe POST: the application token must match the stored one for `member_id`,
    and the user's AUTH_ID must be accepted by the portal's *stored* REST endpoint (never the
    posted DOMAIN), which also says who the user is and whether they are an administrator.
    Until then the AUTH_ID is unverified: its calls use the unverified budgets of the portal and
    of `client_address`, and a used-up budget is a Throttled refusal, not a wait.

    A DOMAIN (in `query`, the query string) other than the stored domain may mean a renamed
    portal: the authorization server is asked where the portal is now. DOMAIN itself is never used."""
    member_id, application_token, auth_id = (str(form.get(key) or "") for key in
                                             ("member_id", "APPLICATION_TOKEN", "AUTH_ID"))
    if not member_id or not auth_id:
        raise Rejected(400, "MISSING_FIELDS", text("MISSING_FIELDS", lang))
    portal = _authorized_portal(bitrix, member_id, application_token, lang)
    posted_domain = str((query or {}).get("DOMAIN") or "")
    if posted_domain and posted_domain.lower() != portal.domain.lower():
        portal = _rechecked_address(bitrix, portal, lang, client_address)
    client = bitrix.unverified_client(portal.client_endpoint, auth_id, portal.member_id, client_address)
    user, is_admin = confirmed_user(client, lang)
    portal = _reread(bitrix, portal)  # the user's calls follow a rename they run into (Bitrix.relocated_endpoint)
    user_id = int(user["ID"])
    return TabUser(
        member_id=portal.member_id,
        user_id=user_id,
        name=" ".join(str(part) for part in (user.get("NAME"), user.get("LAST_NAME")) if part),
        is_admin=is_admin,
        can_edit=is_admin or user_id in (portal.editor_user_ids or []),
        portal_domain=portal.domain,
        client_endpoint=portal.client_endpoint,
        portal_status=portal.status,
        install_generation=portal.install_generation,
    )


def _authorized_portal(bitrix: Bitrix, member_id: str, application_token: str, lang: str) -> Portal:
    """The portal, if installed there and the application token matches. An unknown member_id, an
    uninstalled portal and a wrong token get the same answer, so that an outsider learns nothing
    about a member_id; only the server log tells them apart."""
    with bitrix.session_factory() as db:
        portal = portal_by_member_id(db, member_id)
        stored = bitrix.tokens.application_token(portal) if portal is not None else None
    matches = hmac.compare_digest(application_token.encode(), (stored or DUMMY_APPLICATION_TOKEN).encode())
    if portal is None:
        reason = "unknown member_id"
    elif portal.status == PortalStatus.UNINSTALLED:
        reason = "the app is uninstalled there"
    elif not stored or not matches:
        reason = "the application token does not match"
    else:
        return portal
    log.info("Tab opening refused for member_id %s: %s.", escaped(member_id, 64), reason)
    raise Rejected(401, "APP_NOT_AUTHORIZED", text("APP_NOT_AUTHORIZED", lang))


def _rechecked_address(bitrix: Bitrix, portal: Portal, lang: str, client_address: str) -> Portal:
    """The portal's address as the authorization server says it is now. Anyone with the
    application token can post any DOMAIN, so the check is charged to the opening's unverified
    budgets; if it fails, the stored address stays."""
    try:
        if bitrix.limiter is not None:
            bitrix.limiter.acquire_unverified(portal.member_id, client_address, bitrix.max_wait)
        return bitrix.recheck_address(portal.member_id)
    except RateLimited as exc:
        raise Throttled(exc, lang) from None
    except BitrixError as exc:
        log.warning("Could not re-check the address of portal %s: %s", portal.member_id, exc)
        return portal


def _reread(bitrix: Bitrix, portal: Portal) -> Portal:
    with bitrix.session_factory() as db:
        return portal_by_member_id(db, portal.member_id) or portal


def confirmed_user(client: BitrixClient, lang: str) -> tuple[dict, bool]:
    """Who the client's token belongs to and whether they are an administrator."""
    try:
        user = client.call("user.current")
        is_admin = client.call("user.admin") is True
    except RateLimited as exc:
        raise Throttled(exc, lang) from None
    except BitrixError as exc:
        if exc.code in AUTH_REFUSED_CODES:
            raise Rejected(401, "INVALID_AUTH", text("INVALID_AUTH", lang)) from None
        raise Rejected(502, "PORTAL_UNREACHABLE", text("PORTAL_UNREACHABLE", lang)) from None
    if not isinstance(user, dict) or not str(user.get("ID", "")).isdigit():
        raise Rejected(502, "PORTAL_UNREACHABLE", text("PORTAL_UNREACHABLE", lang))
    return user, is_admin


# --- every API request (api.py) ----------------------------------------------------------------

MAX_AUTH_ID_LENGTH = 512


def current_portal(bitrix: Bitrix, session: TabSession) -> Portal:
    """The session's portal as it is now: still installed, and the same installation the session
    was issued for (a reinstall or an uninstall bumps the generation)."""
    with bitrix.session_factory() as db:
        portal = portal_by_member_id(db, session.member_id)
    if portal is None:
        raise SessionTokenError("SESSION_INVALID")
    if portal.status == PortalStatus.UNINSTALLED:
        raise PortalUnavailable(PORTAL_UNINSTALLED, f"The app is not installed on {portal.domain}.")
    if portal.install_generation != session.generation:
        raise SessionTokenError("SESSION_REVOKED")
    return portal


def reconfirmed(bitrix: Bitrix, session: TabSession, portal: Portal, auth_id: str) -> TabSession:
    """The session with the rights Bitrix24 gives its user *now*, asked with a fresh AUTH_ID from the
    page (BX24.getAuth()), which must belong to the session's user. The signed session already
    authenticates the caller, so these calls use the portal's own budget, not the unverified ones."""
    if not auth_id or len(auth_id) > MAX_AUTH_ID_LENGTH:
        raise Rejected(401, "BITRIX_AUTH_REQUIRED", text("BITRIX_AUTH_REQUIRED", session.lang))
    client = bitrix.user_client(portal.client_endpoint, auth_id, portal.member_id)
    user, is_admin = confirmed_user(client, session.lang)
    if int(user["ID"]) != session.user_id:
        raise Rejected(401, "INVALID_AUTH", text("INVALID_AUTH", session.lang))
    return replace(session, is_admin=is_admin,
                   can_edit=is_admin or session.user_id in (portal.editor_user_ids or []),
                   reseed_grant=session.reseed_grant if is_admin else None)


# --- shaping what leaves the server ----------------------------------------------------------

def present_source(source: Source, declared: list[dict] | None = None) -> dict:
    """A source without its secret setting values: each setting says only whether it is set.

    With the connector's `declared` settings, there is one row per declared code (the editor's
    form); without, one row per stored value.
    """
    item = {key: source[key] for key in SOURCE_PUBLIC_FIELDS if key in source}
    stored = {str(row.get("code")): row for row in source.get("settings") or []}
    rows = declared if declared is not None else list(stored.values())
    item["settings"] = [
        {
            "code": str(row.get("code")),
            "name": str(row.get("name") or row.get("code")),
            "type": str(row.get("type") or "STRING"),
            "isSet": str(stored.get(str(row.get("code")), {}).get("value") or "") != "",
        }
        for row in rows
    ]
    return item


def changed_connector_fields(current: Connector, fields: dict) -> dict:
    """Only the fields that differ from Bitrix24's current values; settings go as a complete list."""
    changes = {}
    for key, value in fields.items():
        if key == "sort":
            value = int(float(value))
        if key == "settings":
            value = normalize_settings(value)
            if value != normalize_settings(current.get("settings")):
                changes[key] = value
        elif current.get(key) != value:
            changes[key] = value
    return changes


# --- the service ----------------------------------------------------------------------------

class TabService:
    def __init__(self, bitrix: Bitrix, session: TabSession):
        self.bitrix = bitrix
        self.session = session
        self.lang = session.lang

    @property
    def biconnector(self) -> Biconnector:
        return self.bitrix.biconnector(self.session.member_id)

    # reading

    def connectors(self) -> list[Connector]:
        return self.biconnector.connectors()

    def connector(self, raw_id) -> Connector:
        return self.biconnector.connector(parse_id(raw_id, self.lang))

    def sources(self) -> list[dict]:
        return [present_source(source) for source in self.biconnector.sources()]

    def source(self, raw_id) -> dict:
        biconnector = self.biconnector
        source = biconnector.source(parse_id(raw_id, self.lang))
        return present_source(source, self._declared_settings(biconnector, source))

    # changing

    def update_connector(self, raw_id, fields: dict) -> dict:
        self.require_editor()
        connector_id = parse_id(raw_id, self.lang)
        errors = connector_errors(fields)
        if errors:
            raise InvalidFields(errors, self.lang)
        biconnector = self.biconnector
        current = biconnector.connector(connector_id)
        changes = changed_connector_fields(current, fields)
        self._check_endpoint_changes(changes)
        if not changes:
            return {"item": current, "changed": []}
        biconnector.update_connector(connector_id, changes)
        return {"item": biconnector.connector(connector_id), "changed": sorted(changes)}

    def _check_endpoint_changes(self, changes: dict) -> None:
        """On every source.update Bitrix24 posts all stored setting values of the source to the
        connector's urlCheck, so only administrators change endpoint URLs, and only to hosts the
        address rule allows (validation.EndpointPolicy)."""
        changed = [name for name in URL_FIELDS if name in changes]
        if not changed:
            return
        if not self.session.is_admin:
            refusals = [FieldError(name, "ENDPOINTS_ADMIN_ONLY",
                                   f'Only a portal administrator can change "{name}".') for name in changed]
            raise InvalidFields(refusals, self.lang, status=403, summary="ENDPOINTS_ADMIN_ONLY")
        errors = self.bitrix.endpoint_policy.errors(changes)
        if errors:
            raise InvalidFields(errors, self.lang)

    def update_source(self, raw_id, fields: dict) -> dict:
        """Title is always sent (Bitrix24 requires it); settings only as typed, never diffed
        against the stored secrets (a diff would tell the user whether a guess was right)."""
        self.require_editor()
        source_id = parse_id(raw_id, self.lang)
        if not isinstance(fields, dict) or not fields:
            raise InvalidFields(source_errors(fields), self.lang)
        if "active" in fields:
            raise InvalidFields([FieldError("active", "VALIDATION_READ_ONLY_FIELD",
                                            'Bitrix24 changes "active" only in its own Analytics hub.')], self.lang)
        biconnector = self.biconnector
        current = biconnector.source(source_id)
        declared = self._declared_settings(biconnector, current)
        request = {"title": current.get("title", ""), **fields}
        errors = source_errors(request, declared)
        if errors:
            raise InvalidFields(errors, self.lang)
        changes = self._source_changes(current, request, declared)
        if not changes:
            return {"item": present_source(current, declared), "changed": []}
        biconnector.update_source(source_id, changes)
        updated = biconnector.source(source_id)
        return {"item": present_source(updated, declared), "changed": sorted(changes)}

    def _source_changes(self, current: Source, request: dict, declared: list[dict]) -> dict:
        changes = {}
        if request["title"] != current.get("title"):
            changes["title"] = request["title"]
        if "description" in request and request["description"] != (current.get("description") or ""):
            changes["description"] = request["description"]
        types = {row.get("code"): row.get("type") for row in declared}
        typed = {
            code: str(int(float(value))) if types.get(code) == "INT" else str(value)
            for code, value in (request.get("settings") or {}).items()
            if str(value).strip() != ""
        }
        if typed:
            changes["settings"] = typed
        if changes:
            changes["title"] = request["title"]  # required on every source.update
        return changes

    @staticmethod
    def _declared_settings(biconnector: Biconnector, source: Source) -> list[dict]:
        if not source.get("connectorId"):
            return []
        return normalize_settings(biconnector.connector(source["connectorId"]).get("settings"))

    # permissions

    def may_edit(self) -> bool:
        if self.session.is_admin:
            return True
        portal = self._portal()
        return portal is not None and self.session.user_id in (portal.editor_user_ids or [])

    def require_editor(self) -> None:
        if not self.may_edit():
            raise Rejected(403, "READ_ONLY", text("READ_ONLY", self.lang))

    def require_admin(self) -> None:
        if not self.session.is_admin:
            raise Rejected(403, "ADMIN_ONLY", text("ADMIN_ONLY", self.lang))

    # editors

    def editors(self) -> dict:
        self.require_admin()
        user_ids = list((self._portal_or_404()).editor_user_ids or [])
        return {"userIds": user_ids, "users": self._user_names(user_ids)}

    def set_editors(self, user_ids) -> dict:
        self.require_admin()
        if not isinstance(user_ids, list) or len(user_ids) > MAX_EDITORS or not all(
            is_integer(value) and int(value) > 0 for value in user_ids
        ):
            raise Rejected(400, "INVALID_EDITORS", text("INVALID_EDITORS", self.lang))
        cleaned = sorted({int(value) for value in user_ids})
        with self.bitrix.session_factory() as db, db.begin():
            portal = portal_by_member_id(db, self.session.member_id)
            if portal is None:
                raise Rejected(404, "PORTAL_NOT_FOUND", text("SESSION_INVALID", self.lang))
            portal.editor_user_ids = cleaned  # a new list, so the JSON column is marked changed
        return self.editors()

    def _user_names(self, user_ids: list[int]) -> list[dict]:
        """Names for the editor list; best effort (ids are enough if the lookup fails)."""
        names: dict[int, str] = {}
        if user_ids:
            try:
                found = self.bitrix.client(self.session.member_id).call("user.get", {"FILTER": {"ID": user_ids}})
            except BitrixError:
                found = []
            for user in found if isinstance(found, list) else []:
                full = " ".join(part for part in (user.get("NAME"), user.get("LAST_NAME")) if part)
                if str(user.get("ID", "")).isdigit():
                    names[int(user["ID"])] = full
        return [{"id": user_id, "name": names.get(user_id) or ""} for user_id in user_ids]

    # re-authorization

    def portal_status(self) -> str:
        portal = self._portal()
        return portal.status if portal is not None else PortalStatus.UNINSTALLED

    def reseed(self) -> dict:
        """Replace a dead stored token with the administrator's own authorization (their grant)."""
        self.require_admin()
        if self.portal_status() not in PortalStatus.RESEEDABLE:
            return {"status": self.portal_status()}
        grant = self._take_grant()
        if grant is None:
            raise Rejected(409, "REAUTH_UNAVAILABLE", text("REAUTH_UNAVAILABLE", self.lang))
        portal = lifecycle.reseed(self.bitrix, self.session.member_id, grant.access_token,
                                  grant.refresh_token, grant.expires_in)
        return {"status": portal.status}

    def _take_grant(self) -> ReseedGrant | None:
        if not self.session.reseed_grant:
            return None
        grants = ReseedGrants(self.bitrix.session_factory, self.bitrix.tokens.cipher)
        return grants.take(self.session.reseed_grant, self.session.member_id, self.session.user_id)

    def _portal(self) -> Portal | None:
        with self.bitrix.session_factory() as db:
            return portal_by_member_id(db, self.session.member_id)

    def _portal_or_404(self) -> Portal:
        portal = self._portal()
        if portal is None:
            raise Rejected(404, "PORTAL_NOT_FOUND", text("SESSION_INVALID", self.lang))
        return portal
