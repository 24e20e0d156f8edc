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
import re
import secrets
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Mapping

from sqlalchemy import select

from ..logging_setup import escaped
from ..models import Database, Portal, PortalStatus
from . import lifecycle
from .biconnector import Biconnector, Connector, Source, normalize_settings
from .bitrix import Bitrix
from .errors import PORTAL_UNINSTALLED, BitrixError, PortalUnavailable, Rejected
from .gateway_objects import GatewayObjects
from .history import (
    CONNECTOR,
    SOURCE,
    Actor,
    EditConflict,
    History,
    checked_version,
    conflicting_fields,
    connector_changes,
    revert_fields,
    revertible,
    source_changes,
    version_of,
)
from .messages import explain, field_message, text
from .ratelimit import RateLimited
from .rest import BitrixClient
from .secret_settings import MAX_CODE_LENGTH, SecretSettings, is_secret_by_default
from .session_tokens import ReseedGrant, ReseedGrants, SessionTokenError, TabSession
from .tokens import portal_by_member_id
from .users import MAX_SEARCH_LENGTH, PortalUsers
from .validation import (
    URL_FIELDS,
    FieldError,
    connector_errors,
    is_integer,
    source_errors,
    source_settings_errors,
)

SOURCE_PUBLIC_FIELDS = (
    "id", "title", "description", "type", "code", "active", "connectorId",
    "dateCreate", "dateUpdate", "createdById", "updatedById",
)
MAX_EDITORS = 500
# What biconnector.connector.add needs (reference 5.4); `settings` may be an empty list.
CONNECTOR_REQUIRED_ON_ADD = ("title", "logo", *URL_FIELDS, "settings")
SECRET_SETTINGS_FIELD = "secretSettings"  # kept by the app, never sent to Bitrix24
# Bitrix24's source.delete refusal while tables use the source has no code of its own.
SOURCE_IN_USE_MARKER = "related datasets"
# A source.add/update whose urlCheck call did not answer in time reaches us as no answer at all.
NO_ANSWER_CODES = ("NETWORK_TIMEOUT", "HTTP_504", "HTTP_502")
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

def present_source(source: Source, declared: list[dict] | None = None, is_secret=is_secret_by_default) -> dict:
    """A source without its secret setting values: a secret setting says only whether it is set,
    every other one carries its `value` too. `is_secret(code)` decides (services/secret_settings.py).

    With the connector's `declared` settings, there is one row per declared code (the editor's
    form); without, one row per stored value.
    """
    item = {key: source[key] for key in SOURCE_PUBLIC_FIELDS if key in source}
    stored = {str(row.get("code")): row for row in source.get("settings") or []}
    rows = declared if declared is not None else list(stored.values())
    item["settings"] = [_setting_row(row, stored, is_secret) for row in rows]
    return item


def _setting_row(row: dict, stored: dict, is_secret) -> dict:
    code = str(row.get("code"))
    value = str(stored.get(code, {}).get("value") or "")
    secret = bool(is_secret(code))
    shown = {"code": code, "name": str(row.get("name") or code), "type": str(row.get("type") or "STRING"),
             "secret": secret, "isSet": value != ""}
    if not secret:
        shown["value"] = value
    return shown


def present_connector(connector: Connector, secrets: SecretSettings) -> dict:
    return {**connector, SECRET_SETTINGS_FIELD: secrets.codes(connector)}


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


URL_CHECK_FAILURES = ("SOURCE_UPDATE_CONNECTION_ERROR", "SOURCE_CREATE_CONNECTION_ERROR")
_STATUS_IN_TEXT = re.compile(r"\b([45][0-9]{2})\b")
_NO_ANSWER_IN_TEXT = re.compile(r"tim(e|ed) ?out|did not answer|resolve|could not connect|can'?t connect", re.I)


def url_check_outcome(error: BitrixError) -> tuple[str, int | None] | None:
    """What a failed source.add/update says about the connector's urlCheck: (outcome, status), or
    None when the error is about something else. Bitrix24 answers a failed check with only "Cannot
    update connection." (reference 6.4), so that is "refused" (cause unknown); a description that does
    tell more (newer portal code may) is read defensively. No answer at all from Bitrix24 within its
    request limit means the check did not answer in time."""
    if error.code in NO_ANSWER_CODES:
        return "no_answer", None
    if error.code not in URL_CHECK_FAILURES:
        return None
    status = _STATUS_IN_TEXT.search(error.description)
    if status:
        return "error_status", int(status.group(1))
    if "empty" in error.description.lower():
        return "empty_body", 200
    if _NO_ANSWER_IN_TEXT.search(error.description):
        return "no_answer", None
    return "refused", None


CHECK_TEXTS = {"ok": "CHECK_OK", "no_answer": "CHECK_NO_ANSWER", "error_status": "CHECK_ERROR_STATUS",
               "empty_body": "CHECK_EMPTY_BODY", "refused": "CHECK_REFUSED"}


def check_result(outcome: str | tuple[str, int | None], status: int | None, lang: str, detail: str = "") -> dict:
    if isinstance(outcome, tuple):
        outcome, status = outcome
    message = text(CHECK_TEXTS[outcome], lang)
    if outcome == "error_status":
        message = message.format(status=f" ({status})" if status else "")
    if detail:
        message = f"{message} {detail}"
    return {"ok": outcome == "ok", "outcome": outcome, "status": status, "message": message}


# --- the service ----------------------------------------------------------------------------

class TabService:
    def __init__(self, bitrix: Bitrix, session: TabSession, actor: Actor | None = None):
        """`actor` is who the history records for changes; default: the session's user, via "api"."""
        self.bitrix = bitrix
        self.session = session
        self.lang = session.lang
        self.actor = actor or Actor.user(session.user_id, via="api")
        self._reverting: int | None = None  # the change a revert() in progress puts back

    @property
    def biconnector(self) -> Biconnector:
        return self.bitrix.biconnector(self.session.member_id)

    # reading

    @cached_property
    def secret_settings(self) -> SecretSettings:
        """One per service (a request or a CLI command): the choices are read once, not per source."""
        return SecretSettings(self.bitrix.session_factory, self.session.member_id)

    def connectors(self) -> list[dict]:
        secrets = self.secret_settings
        return self._with_history(CONNECTOR, [present_connector(item, secrets) for item in self.biconnector.connectors()])

    def connector(self, raw_id) -> dict:
        return self._with_history(CONNECTOR, [
            present_connector(self.biconnector.connector(parse_id(raw_id, self.lang)), self.secret_settings)])[0]

    def sources(self) -> list[dict]:
        secrets = self.secret_settings
        return self._with_history(SOURCE, [self._present(source, None, secrets) for source in self.biconnector.sources()])

    def source(self, raw_id) -> dict:
        biconnector = self.biconnector
        source = biconnector.source(parse_id(raw_id, self.lang))
        return self._with_history(SOURCE, [self._present(source, self._declared_settings(biconnector, source))])[0]

    def _present(self, source: Source, declared: list[dict] | None, secrets: SecretSettings | None = None) -> dict:
        secrets = secrets or self.secret_settings
        item = present_source(source, declared, lambda code: secrets.is_secret(source.get("connectorId"), code))
        item["version"] = self.version_of(SOURCE, source)  # of the stored values, secrets included
        return item

    # changing

    def update_connector(self, raw_id, fields: dict, if_version=None) -> dict:
        """`fields.secretSettings` (administrators only) is the app's own list of secret setting
        codes; everything else goes to Bitrix24 where it differs. With `if_version`, a connector
        changed since that version is an EditConflict and nothing is written."""
        self.require_editor()
        connector_id = parse_id(raw_id, self.lang)
        if_version = checked_version(if_version, self.lang)
        fields, secret_codes = self._split_secret_settings(fields)
        errors = connector_errors(fields) if fields or secret_codes is None else []
        if errors:
            raise InvalidFields(errors, self.lang)
        biconnector = self.biconnector
        current = biconnector.connector(connector_id)
        secrets = self.secret_settings
        self._check_unchanged(CONNECTOR, current, if_version, fields, present_connector(current, secrets))
        changes = changed_connector_fields(current, fields)
        self._check_endpoint_changes(changes)
        secrets_changed = secret_codes is not None and set(secret_codes) != set(secrets.codes(current))
        if secret_codes is not None:
            declared = self._check_secret_codes(secret_codes, changes.get("settings", current.get("settings")))
        before, old_codes = current, secrets.codes(current)
        if changes:
            biconnector.update_connector(connector_id, changes)
            current = biconnector.connector(connector_id)
        if secret_codes is not None:
            secrets.set_codes(connector_id, secret_codes, declared)
            self._mask_recorded_values(connector_id, set(secret_codes) - set(old_codes))
        self.record(CONNECTOR, connector_id, connector_changes(before, current) + (
            [{"field": SECRET_SETTINGS_FIELD, "old": old_codes, "new": secret_codes, "secret": False}]
            if secrets_changed else []))
        changed = sorted(changes) + ([SECRET_SETTINGS_FIELD] if secrets_changed else [])
        return {"item": self._with_history(CONNECTOR, [present_connector(current, secrets)])[0], "changed": changed}

    def add_connector(self, fields) -> dict:
        """A custom connector (endpoints hosted elsewhere); administrators only, since its URLs
        receive every source's settings. Validated as an update plus the fields add requires."""
        self.require_admin()
        fields, secret_codes = self._split_secret_settings(fields)
        errors = connector_errors(fields)
        if isinstance(fields, dict) and fields:
            errors += [FieldError(name, "VALIDATION_REQUIRED_FIELD_MISSING", f'Field "{name}" is required.')
                       for name in CONNECTOR_REQUIRED_ON_ADD if name not in fields]
        if errors:
            raise InvalidFields(errors, self.lang)
        values = changed_connector_fields({}, fields)
        self._check_endpoint_changes(values)
        declared = self._check_secret_codes(secret_codes or [], values["settings"])
        biconnector = self.biconnector
        connector_id = biconnector.add_connector(values)
        secrets = self.secret_settings
        if secret_codes is not None:
            secrets.set_codes(connector_id, secret_codes, declared)
        created = biconnector.connector(connector_id)
        self.record(CONNECTOR, connector_id, connector_changes({}, created), action="create")
        return self._with_history(CONNECTOR, [present_connector(created, secrets)])[0]

    def delete_connector(self, raw_id) -> dict:
        self.require_admin()
        connector_id = parse_id(raw_id, self.lang)
        if connector_id in self._gateway_connector_ids():
            raise Rejected(409, "GATEWAY_CONNECTOR", text("GATEWAY_CONNECTOR", self.lang))
        try:
            self.biconnector.delete_connector(connector_id)
        except BitrixError as exc:
            if exc.code == "CONNECTOR_DELETE_RESTRICTED":
                raise Rejected(409, exc.code, text("CONNECTOR_DELETE_RESTRICTED", self.lang)) from None
            raise
        self.secret_settings.forget(connector_id)
        self.record(CONNECTOR, connector_id, [], action="delete")
        return {"deleted": connector_id}

    def _split_secret_settings(self, fields) -> tuple[dict, list[str] | None]:
        """`fields` without `secretSettings`, and that list (None when absent), checked for shape."""
        if not isinstance(fields, dict) or SECRET_SETTINGS_FIELD not in fields:
            return fields, None
        fields = dict(fields)
        codes = fields.pop(SECRET_SETTINGS_FIELD)
        self.require_admin()
        if not isinstance(codes, list) or not all(
                isinstance(code, str) and code.strip() and len(code) <= MAX_CODE_LENGTH for code in codes):
            raise InvalidFields([FieldError(SECRET_SETTINGS_FIELD, "VALIDATION_INVALID_FIELD_TYPE",
                                            'Field "secretSettings" must be a list of setting codes.')], self.lang)
        return fields, sorted(set(codes))

    def _check_secret_codes(self, codes: list[str], settings) -> list[str]:
        """The codes `settings` declares; each of `codes` must be one of them."""
        declared = [str(row.get("code")) for row in normalize_settings(settings)]
        unknown = [code for code in codes if code not in declared]
        if unknown:
            raise InvalidFields([FieldError(SECRET_SETTINGS_FIELD, "UNKNOWN_SETTING_CODE",
                                            f'The connector declares no setting "{code}".') for code in unknown],
                                self.lang)
        return declared

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

    def update_source(self, raw_id, fields: dict, if_version=None) -> dict:
        """Title is always sent (Bitrix24 requires it); settings only as typed, never diffed
        against the stored secrets (a diff would tell the user whether a guess was right).
        With `if_version`, a source changed since that version is an EditConflict."""
        self.require_editor()
        source_id = parse_id(raw_id, self.lang)
        if_version = checked_version(if_version, self.lang)
        if not isinstance(fields, dict) or not fields:
            raise InvalidFields(source_errors(fields), self.lang)
        if "active" in fields:
            raise InvalidFields([FieldError("active", "VALIDATION_READ_ONLY_FIELD",
                                            'Bitrix24 changes "active" only in its own Analytics hub.')], self.lang)
        if "settings" in fields and source_id in self._gateway_source_ids():  # they hold the gateway's key
            raise Rejected(409, "GATEWAY_SOURCE", text("GATEWAY_SOURCE", self.lang))
        biconnector = self.biconnector
        current = biconnector.source(source_id)
        declared = self._declared_settings(biconnector, current)
        self._check_unchanged(SOURCE, current, if_version, fields, self._present(current, declared))
        request = {"title": current.get("title", ""), **fields}
        errors = source_errors(request, declared)
        if errors:
            raise InvalidFields(errors, self.lang)
        changes = self._source_changes(current, request, declared)
        if not changes:
            return {"item": self._with_history(SOURCE, [self._present(current, declared)])[0], "changed": []}
        biconnector.update_source(source_id, changes)
        updated = biconnector.source(source_id)
        self.record(SOURCE, source_id, source_changes(current, updated, self._is_secret_of(current),
                                                       (changes.get("settings") or {}).keys()))
        return {"item": self._with_history(SOURCE, [self._present(updated, declared)])[0], "changed": sorted(changes)}

    def add_source(self, fields) -> dict:
        """A source on a custom connector. Bitrix24 calls the connector's urlCheck with the
        settings first and creates nothing if it fails. The gateway's own connectors get their
        sources from databases (gateway/databases.py), so they are refused here."""
        self.require_editor()
        if not isinstance(fields, dict) or not fields:
            raise InvalidFields(source_errors(fields), self.lang)
        request = self._new_source_fields(fields)
        connector_id = int(request["connectorId"])
        if connector_id in self._gateway_connector_ids():
            raise Rejected(409, "GATEWAY_CONNECTOR", text("GATEWAY_CONNECTOR_SOURCE", self.lang))
        biconnector = self.biconnector
        declared = normalize_settings(biconnector.connector(connector_id).get("settings"))
        errors = source_settings_errors(request["settings"], declared)
        if errors:
            raise InvalidFields(errors, self.lang)
        types = {row.get("code"): row.get("type") for row in declared}
        request["settings"] = {code: str(int(float(value))) if types.get(code) == "INT" else str(value)
                               for code, value in request["settings"].items()}
        source_id = biconnector.add_source(request)
        created = biconnector.source(source_id)
        self.record(SOURCE, source_id, source_changes({}, created, self._is_secret_of(created), request["settings"]),
                     action="create")
        return self._with_history(SOURCE, [self._present(created, declared)])[0]

    def _new_source_fields(self, fields: dict) -> dict:
        """What source.add gets: connectorId, title, description, settings. `active` and `code` are
        Bitrix24's (new sources are active, the code is rest_<connectorId>): accepted only as that."""
        request = {key: value for key, value in fields.items() if key not in ("active", "code")}
        errors = [error for error in source_errors(request) if error.field != "connectorId"]
        if fields.get("active", True) is not True:
            errors.append(FieldError("active", "VALIDATION_READ_ONLY_FIELD",
                                     "New sources are always active; Bitrix24 changes that only in its Analytics hub."))
        if fields.get("code") not in (None, ""):
            errors.append(FieldError("code", "VALIDATION_READ_ONLY_FIELD",
                                     "Bitrix24 sets the source code itself (rest_<connector id>)."))
        connector_id = fields.get("connectorId")
        if not (is_integer(connector_id) and int(connector_id) > 0):
            errors.append(FieldError("connectorId", "VALIDATION_REQUIRED_FIELD_MISSING" if connector_id is None
                                     else "VALIDATION_INVALID_FIELD_TYPE", "Choose the connector of the source."))
        if not isinstance(request.get("settings", {}), dict):
            errors.append(FieldError("settings", "VALIDATION_INVALID_FIELD_TYPE",
                                     'Field "settings" must be an object of setting code to value.'))
        if errors:
            raise InvalidFields(errors, self.lang)
        request.setdefault("settings", {})
        return request

    def delete_source(self, raw_id) -> dict:
        self.require_editor()
        source_id = parse_id(raw_id, self.lang)
        if self._gateway_database(source_id) is not None:
            raise Rejected(409, "GATEWAY_SOURCE", text("GATEWAY_SOURCE", self.lang))
        try:
            self.biconnector.delete_source(source_id)
        except BitrixError as exc:
            if SOURCE_IN_USE_MARKER in exc.description.lower():
                raise Rejected(409, "SOURCE_IN_USE", text("SOURCE_IN_USE", self.lang)) from None
            raise
        self.record(SOURCE, source_id, [], action="delete")
        return {"deleted": source_id}

    def check_source(self, raw_id, gateway=None) -> dict:
        """What Bitrix24 would see from the connector's urlCheck. The gateway's own sources are
        checked by the gateway directly (`gateway`, gateway/service.py); any other source through
        source.update with its unchanged title, which makes Bitrix24 call urlCheck with the stored
        values (and, if it passes, touches only dateUpdate)."""
        self.require_editor()
        source_id = parse_id(raw_id, self.lang)
        database = self._gateway_database(source_id) if gateway is not None else None
        if database is not None:
            return self._gateway_check(gateway, database)
        biconnector = self.biconnector
        current = biconnector.source(source_id)
        try:
            biconnector.update_source(source_id, {"title": current.get("title") or ""})
        except BitrixError as exc:
            outcome = url_check_outcome(exc)
            if outcome is None:
                raise
            return check_result(outcome, None, self.lang)
        return check_result("ok", 200, self.lang)

    def _gateway_check(self, gateway, database: Database) -> dict:
        from ..gateway.service import Caller, GatewayError  # the gateway imports this module

        try:
            gateway.check(Caller(portal=None, database=database))
        except GatewayError as exc:
            return check_result("error_status", exc.status, self.lang, detail=exc.message)
        return check_result("ok", 200, self.lang)

    def _gateway_connector_ids(self) -> frozenset[int]:
        return GatewayObjects.of_portal(self.bitrix.session_factory, self.session.member_id).connector_ids

    def _gateway_source_ids(self) -> frozenset[int]:
        return GatewayObjects.of_portal(self.bitrix.session_factory, self.session.member_id).source_ids

    def _gateway_database(self, source_id: int) -> Database | None:
        with self.bitrix.session_factory() as db:
            portal = portal_by_member_id(db, self.session.member_id)
            if portal is None:
                return None
            return db.scalar(select(Database).where(Database.portal_id == portal.id, Database.source_id == source_id))

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

    # history and concurrent edits (services/history.py)

    @property
    def history(self) -> History:
        return History(self.bitrix.session_factory, self.session.member_id)

    def version_of(self, kind: str, item: Mapping) -> str:
        is_secret = self._is_secret_of(item) if kind == SOURCE else is_secret_by_default
        return version_of(kind, item, self.bitrix.settings.client_secret, is_secret)

    def history_of(self, kind: str, raw_id) -> list[dict]:
        """Newest first; kept after the object is deleted. Settings secret now are masked."""
        object_id = parse_id(raw_id, self.lang)
        return self.history.entries(kind, object_id, self._secret_now(kind, object_id))

    def _secret_now(self, kind: str, object_id: int):
        """Which settings of a source are secret now (None for a connector). For a source that is
        gone, a code is secret if it would be for any connector of the portal."""
        if kind != SOURCE:
            return None
        secrets = self.secret_settings
        try:
            connector_id = self.biconnector.source(object_id).get("connectorId")
        except BitrixError as exc:
            if exc.code != "SOURCE_NOT_FOUND":
                raise
            connector_id = None
        if connector_id is None:
            return lambda code: any(secrets.is_secret(other, code) for other in [None, *secrets.choices()])
        return lambda code: secrets.is_secret(connector_id, code)

    def _mask_recorded_values(self, connector_id: int, codes: set[str]) -> None:
        if codes:
            source_ids = [source["id"] for source in self.biconnector.sources()
                          if source.get("connectorId") == connector_id]
            self.history.mask_settings(source_ids, codes)

    def revert(self, raw_change_id, if_version=None) -> dict:
        """Put back the old values of one change (never secrets), as an update by this actor:
        the same validation, rights and conflict check."""
        self.require_editor()
        record = self.history.change(parse_id(raw_change_id, self.lang))
        if record is None:
            raise Rejected(404, "CHANGE_NOT_FOUND", text("CHANGE_NOT_FOUND", self.lang))
        is_secret = self._secret_now(record.object_type, record.object_id)
        if not revertible(record, is_secret):
            raise Rejected(400, "NOT_REVERTIBLE", text("NOT_REVERTIBLE", self.lang))
        update = self.update_connector if record.object_type == CONNECTOR else self.update_source
        self._reverting = record.id
        try:
            return {"kind": record.object_type, "id": record.object_id,
                    **update(record.object_id, revert_fields(record, is_secret), if_version)}
        finally:
            self._reverting = None

    def _with_history(self, kind: str, items: list[dict]) -> list[dict]:
        """Items with their version (a source has it from _present, of its stored values), last
        change, and `gateway`: whether it is the app's own (a gateway connector, or the source of a
        database entry), which is managed through databases, not as a custom connector or source."""
        last = self.history.last_changes(kind, [item.get("id") for item in items])
        own = self._gateway_connector_ids() if kind == CONNECTOR else self._gateway_source_ids()
        for item in items:
            if kind == CONNECTOR:
                item["version"] = self.version_of(CONNECTOR, item)
            item["lastChange"] = last.get(item.get("id"))
            item["gateway"] = item.get("id") in own
        return items

    def _is_secret_of(self, source: Mapping):
        secrets = self.secret_settings
        return lambda code: secrets.is_secret(source.get("connectorId"), code)

    def _check_unchanged(self, kind: str, current: Mapping, if_version: str | None, fields, presented: dict) -> None:
        """Refuse the write if the object is not at the version the editor started from."""
        if if_version is None or self.version_of(kind, current) == if_version:
            return
        is_secret = self._is_secret_of(current) if kind == SOURCE else (lambda code: False)
        raise EditConflict({
            "lastChange": self.history.latest(kind, current["id"]),
            "fields": conflicting_fields(kind, current, fields if isinstance(fields, dict) else {}, is_secret),
            "current": self._with_history(kind, [presented])[0],
        }, self.lang)

    def record(self, kind: str, object_id: int, changes: list[dict], action: str = "update") -> None:
        actor = self.actor
        if actor.kind == "user" and not actor.name:
            names = PortalUsers(self.bitrix, self.session.member_id).names([actor.id])
            actor = replace(actor, name=names.get(actor.id, ""))
        if self._reverting and action == "update":
            action = "revert"
        self.history.record(kind, object_id, actor, changes, action, reverts_id=self._reverting)

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
        names = self.users.names(user_ids)  # best effort: ids are enough if the lookup fails
        return {"userIds": user_ids, "users": [{"id": user_id, "name": names.get(user_id, "")} for user_id in user_ids]}

    def set_editors(self, user_ids) -> dict:
        """Ids new to the list must exist on the portal (`user.get`); ones already there stay even
        if the user was deleted since, so the list can always be saved."""
        self.require_admin()
        if not isinstance(user_ids, list) or len(user_ids) > MAX_EDITORS or not all(
            is_integer(value) and int(value) > 0 for value in user_ids
        ):
            raise Rejected(400, "INVALID_EDITORS", text("INVALID_EDITORS", self.lang))
        cleaned = sorted({int(value) for value in user_ids})
        added = sorted(set(cleaned) - set(self._portal_or_404().editor_user_ids or []))
        found = self.users.found(added) if added else {}
        unknown = [user_id for user_id in added if user_id not in found]
        if unknown:
            raise Rejected(400, "UNKNOWN_USERS", text("UNKNOWN_USERS", self.lang).format(
                ids=", ".join(str(user_id) for user_id in unknown)))
        with self.bitrix.session_factory() as db, db.begin():
            portal = portal_by_member_id(db, self.session.member_id)
            if portal is None:
                raise Rejected(404, "PORTAL_NOT_FOUND", text("SESSION_INVALID", self.lang))
            portal.editor_user_ids = cleaned  # a new list, so the JSON column is marked changed
        return self.editors()

    def search_users(self, query) -> list[dict]:
        """Portal users whose name starts with `query` (user.search), to pick editors by name."""
        self.require_admin()
        if not isinstance(query, str) or len(query) > MAX_SEARCH_LENGTH:
            raise Rejected(400, "INVALID_SEARCH", text("INVALID_SEARCH", self.lang))
        return self.users.search(query.strip())

    @property
    def users(self) -> PortalUsers:
        return PortalUsers(self.bitrix, self.session.member_id)

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
