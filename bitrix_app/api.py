"""The tab's JSON API under /api. Every request carries the session token from the page as
`Authorization: Bearer <token>`; the token names the portal, so nothing here takes a portal id.
Every request re-checks that the portal is still the installation the token was issued for; a
write by an administrator, and a renewal, re-check the user's rights with Bitrix24 through a fresh
authorization the page sends as `X-Bitrix24-Auth` (BX24.getAuth()).

Success: `{"result": ...}`. Failure: `{"error": CODE, "error_description": "..."}` (plus
`fields` for validation errors), with the status from `status_for` below.
"""
from __future__ import annotations

import math
import re
import time

from flask import Blueprint, current_app, g, jsonify, request

from .config import secret_keys
from .connector import register_connectors
from .gateway.databases import DatabaseService
from .services.errors import BitrixError, Rejected
from .services.history import CONNECTOR, SOURCE, Actor, EditConflict
from .services.messages import explain, normalize_lang, text
from .services.session_tokens import SessionTokenError, SessionTokens, TabSession
from .services.tab import InvalidFields, TabService, Throttled, current_portal, reconfirmed

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_BODY_BYTES = 2 * 1024 * 1024  # room for a logo uploaded as a data: URI
FRESH_AUTH_HEADER = "X-Bitrix24-Auth"
RENEW_ENDPOINT = "api.renew_session"

NOT_FOUND_CODES = {"CONNECTOR_NOT_FOUND", "SOURCE_NOT_FOUND", "DATASET_NOT_FOUND", "PORTAL_NOT_FOUND",
                   "ERROR_METHOD_NOT_FOUND"}
REAUTH_CODES = {"PORTAL_NEEDS_REAUTH", "invalid_grant", "invalid_client", "PORTAL_UNINSTALLED",
                "APPLICATION_NOT_FOUND", "expired_token", "invalid_token", "NO_AUTH_FOUND"}
FORBIDDEN_CODES = {"ACCESS_DENIED", "insufficient_scope", "user_access_error", "METHOD_CONFIRM_DENIED",
                   "METHOD_CONFIRM_WAITING"}
# PORTAL_BUSY and TOO_MANY_REQUESTS are our own admission control refusing to wait (RateLimited).
RATE_LIMIT_STATUS = {"QUERY_LIMIT_EXCEEDED": 503, "OVERLOAD_LIMIT": 503, "OPERATION_TIME_LIMIT": 429,
                     "PORTAL_BUSY": 503, "TOO_MANY_REQUESTS": 429}
INPUT_CODES = {"BX_INVALID_VALUE", "BX_EMPTY_REQUIRED", "ERROR_ARGUMENT"}
_FIELD_IN_MESSAGE = re.compile(r'Field "(\w+)"')


def status_for(error: BitrixError) -> int:
    """The HTTP status of our answer when Bitrix24 refused or failed (see the README)."""
    code = error.code
    if code in NOT_FOUND_CODES:
        return 404
    if code in REAUTH_CODES:
        return 409
    if code == "PAYMENT_REQUIRED":
        return 402
    if code in FORBIDDEN_CODES:
        return 403
    if code in RATE_LIMIT_STATUS:
        return RATE_LIMIT_STATUS[code]
    if code.startswith("VALIDATION_") or code in INPUT_CODES:
        return 400
    if code == "BITRIX_ERROR" and "fields are required" in error.description.lower():
        return 400  # source.update's code-less "All the fields are required."
    return 502


def session_tokens() -> SessionTokens:
    config = current_app.config
    return SessionTokens(secret_keys(config), int(config["SESSION_TOKEN_TTL"]), audience=config["BITRIX_CLIENT_ID"])


def service() -> TabService:
    return TabService(current_app.extensions["bitrix"], g.tab_session, Actor.user(g.tab_session.user_id, via="tab"))


def lang() -> str:
    session = g.get("tab_session")
    return normalize_lang(session.lang if session else request.args.get("lang"))


# --- request plumbing --------------------------------------------------------------------------

@bp.before_request
def authenticate() -> None:
    request.max_content_length = MAX_BODY_BYTES
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Rejected(401, "SESSION_REQUIRED", text("SESSION_REQUIRED", lang()))
    renewing = request.endpoint == RENEW_ENDPOINT
    g.tab_session = session = session_tokens().read(token.strip(), renewing=renewing)
    bitrix = current_app.extensions["bitrix"]
    portal = current_portal(bitrix, session)
    # Reads trust the rights in the token (minutes old); what an administrator changes is re-checked.
    if renewing or (session.is_admin and request.method not in ("GET", "HEAD")):
        g.tab_session = reconfirmed(bitrix, session, portal, request.headers.get(FRESH_AUTH_HEADER, "").strip())


def json_body() -> dict:
    if not request.is_json:
        raise Rejected(400, "INVALID_JSON", text("INVALID_JSON", lang()))
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly deep nesting is bad input, not a server failure
        body = None
    if not isinstance(body, dict):
        raise Rejected(400, "INVALID_JSON", text("INVALID_JSON", lang()))
    return body


@bp.after_app_request
def forbid_framing(response):
    if request.path.startswith("/api/"):
        response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# --- errors ----------------------------------------------------------------------------------

def error_json(status: int, code: str, description: str, **extra):
    return jsonify(error=code, error_description=description, **extra), status


@bp.errorhandler(SessionTokenError)
def session_error(exc: SessionTokenError):
    return error_json(401, exc.code, text(exc.code, lang()))


@bp.errorhandler(InvalidFields)
def invalid_fields(exc: InvalidFields):
    return error_json(exc.status, exc.code, exc.description, fields=exc.fields(lang()))


@bp.errorhandler(EditConflict)
def edit_conflict(exc: EditConflict):
    return error_json(exc.status, exc.code, exc.description, conflict=exc.conflict)


@bp.errorhandler(Rejected)
def rejected(exc: Rejected):
    response, status = error_json(exc.status, exc.code, exc.description)
    if isinstance(exc, Throttled):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response, status


@bp.errorhandler(BitrixError)
def bitrix_failed(exc: BitrixError):
    status = status_for(exc)
    description = explain(exc, lang())
    extra = {}
    field = _FIELD_IN_MESSAGE.search(exc.description)
    if status == 400 and field:
        extra["fields"] = [{"field": field.group(1), "code": exc.code, "message": description}]
    response, status = error_json(status, exc.code, description, **extra)
    if status in (429, 503):
        response.headers["Retry-After"] = str(_retry_after(exc))
    return response, status


def _retry_after(exc: BitrixError) -> int:
    if exc.reset_at:
        return max(1, math.ceil(exc.reset_at - time.time()))
    return 5


# --- endpoints -------------------------------------------------------------------------------

@bp.get("/session")
def session_info():
    tab = service()
    return jsonify(result={
        "userId": g.tab_session.user_id,
        "isAdmin": g.tab_session.is_admin,
        "canEdit": tab.may_edit(),
        "portalStatus": tab.portal_status(),
    })


@bp.post("/session/renew")
def renew_session():
    """A fresh token for the page; `authenticate` re-checked the user with Bitrix24 first."""
    tokens = session_tokens()
    session: TabSession = g.tab_session
    return jsonify(result={"token": tokens.issue(session), "expiresIn": tokens.ttl,
                           "isAdmin": session.is_admin, "canEdit": session.can_edit})


@bp.get("/connectors")
def list_connectors():
    return jsonify(result=service().connectors())


@bp.post("/connectors")
def add_connector():
    return jsonify(result=service().add_connector(json_body().get("fields"))), 201


@bp.delete("/connectors/<connector_id>")
def delete_connector(connector_id: str):
    return jsonify(result=service().delete_connector(connector_id))


@bp.get("/connectors/<connector_id>")
def get_connector(connector_id: str):
    return jsonify(result=service().connector(connector_id))


@bp.post("/connectors/<connector_id>")
def update_connector(connector_id: str):
    body = json_body()
    return jsonify(result=service().update_connector(connector_id, body.get("fields"), body.get("ifVersion")))


@bp.get("/connectors/<connector_id>/history")
def connector_history(connector_id: str):
    return jsonify(result=service().history_of(CONNECTOR, connector_id))


@bp.get("/sources")
def list_sources():
    return jsonify(result=service().sources())


@bp.post("/sources")
def add_source():
    return jsonify(result=service().add_source(json_body().get("fields"))), 201


@bp.delete("/sources/<source_id>")
def delete_source(source_id: str):
    return jsonify(result=service().delete_source(source_id))


@bp.post("/sources/<source_id>/check")
def check_source(source_id: str):
    """What Bitrix24 sees from the connector's urlCheck; the gateway's own sources ask the gateway."""
    return jsonify(result=service().check_source(source_id, current_app.extensions["gateway"]))


@bp.get("/sources/<source_id>")
def get_source(source_id: str):
    return jsonify(result=service().source(source_id))


@bp.post("/sources/<source_id>")
def update_source(source_id: str):
    body = json_body()
    return jsonify(result=service().update_source(source_id, body.get("fields"), body.get("ifVersion")))


@bp.get("/sources/<source_id>/history")
def source_history(source_id: str):
    return jsonify(result=service().history_of(SOURCE, source_id))


@bp.post("/history/<change_id>/revert")
def revert_change(change_id: str):
    """Put back the old values of one change; answers the object as it is now."""
    body = json_body() if request.get_data() else {}
    return jsonify(result=service().revert(change_id, body.get("ifVersion"))["item"])


@bp.get("/users")
def search_users():
    return jsonify(result=service().search_users(request.args.get("search", "")))


@bp.get("/editors")
def get_editors():
    return jsonify(result=service().editors())


@bp.put("/editors")
def put_editors():
    return jsonify(result=service().set_editors(json_body().get("userIds")))


@bp.post("/reseed")
def reseed():
    result = service().reseed()
    register_connectors(g.tab_session.member_id)
    return jsonify(result=result)


# --- databases served through the connector gateway ------------------------------------------

def databases() -> DatabaseService:
    return DatabaseService(current_app.extensions["bitrix"], current_app.extensions["gateway"], g.tab_session,
                           Actor.user(g.tab_session.user_id, via="tab"))


@bp.get("/databases")
def list_databases():
    return jsonify(result=databases().list())


@bp.post("/databases")
def add_database():
    return jsonify(result=databases().add(json_body())), 201


@bp.get("/databases/<database_id>")
def get_database(database_id: str):
    return jsonify(result=databases().get(database_id))


@bp.patch("/databases/<database_id>")
def update_database(database_id: str):
    return jsonify(result=databases().update(database_id, json_body()))


@bp.delete("/databases/<database_id>")
def delete_database(database_id: str):
    return jsonify(result=databases().delete(database_id))


@bp.post("/databases/<database_id>/check")
def check_database(database_id: str):
    return jsonify(result=databases().check(database_id))
