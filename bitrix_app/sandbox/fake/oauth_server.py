"""The authorization server (oauth.bitrix.info stand-in): ``/oauth/token/`` and ``/rest/app.info``.

Plus the portal's ``/<domain>/oauth/authorize/`` page, which redirects with a 30-second code.
"""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, redirect, request

from . import tokens
from .rest import extract_token, method_name, request_params
from .tokens import OAuthError
from .web import RestError, current_fake, json_response, time_block

bp = Blueprint("fake_oauth", __name__)


@bp.route("/oauth/token/", methods=["GET", "POST"])
@bp.route("/oauth/token", methods=["GET", "POST"])
def token_endpoint() -> Response:
    fake = current_fake()
    # Documented: GET with a query string. POST reads the form body only (a POST with the
    # parameters in the query string was reported to fail).
    params = request.form if request.method == "POST" else request.args
    _count_token_request(fake, params)
    try:
        return json_response(_grant(fake, params))
    except OAuthError as error:
        return json_response(error.body(), error.status)


def _count_token_request(fake, params) -> None:
    with fake.state.lock:
        fake.state.token_request_count += 1
        portal = tokens.portal_of_grant(fake.state, params.get("refresh_token"), params.get("code"))
        if portal is not None:
            portal.token_request_count += 1


def _grant(fake, params) -> dict:
    state, config = fake.state, fake.config
    grant_type = params.get("grant_type")
    if grant_type not in ("refresh_token", "authorization_code"):
        raise OAuthError("invalid_request", "Invalid grant_type parameter", 400)
    tokens.check_client(state, config, params.get("client_id"), params.get("client_secret"))
    if grant_type == "refresh_token":
        return tokens.refresh_grant(state, config, params["client_id"], params.get("refresh_token", ""))
    return tokens.code_grant(state, config, params["client_id"], params.get("code", ""))


@bp.route("/rest/<path:method_path>", methods=["GET", "POST"])
def oauth_rest(method_path: str) -> Response:
    """``app.info`` on the authorization server: is this token ours, and for which portal?"""
    fake = current_fake()
    start = fake.state.clock.now()
    try:
        if method_name(method_path) != "app.info":
            raise RestError("ERROR_METHOD_NOT_FOUND", "Method not found!", 404)
        result = _app_info(fake, extract_token(request_params()))
    except RestError as error:
        return json_response(error.body(), error.status)
    return json_response({"result": result, "time": time_block(start, fake.state.clock.now())})


def _app_info(fake, token: str | None) -> dict:
    state = fake.state
    if not token:
        raise RestError("NO_AUTH_FOUND", "Wrong authorization data", 401)
    with state.lock:
        access = state.access_tokens.get(token)
        if access is None or access.status == "revoked":
            raise RestError("invalid_token", "Unable to get application by token", 401)
        if access.status == "rotated" or access.expires_at <= state.clock.now():
            raise RestError("expired_token", "The access token provided has expired", 401)
        portal = state.portals[access.member_id]
        ours = access.client_id == state.main_client_id
        return {
            "client_id": access.client_id,
            "scope": access.scope,
            "expires": state.clock.iso(access.expires_at),
            "user_id": access.user_id,
            "install": {
                "installed": portal.installed if ours else True,
                "version": portal.app_version if ours else 1,
                "status": portal.app_status,
                "scope": access.scope,
                "domain": portal.domain,
                "uri": portal.page_url,
                "client_endpoint": portal.client_endpoint,
                "member_id": portal.member_id,
                "member_type": "PORTAL",
            },
        }


@bp.route("/<domain>/oauth/authorize/", methods=["GET"])
def authorize(domain: str) -> Response:
    """Step 1 of the authorization-code flow, as a logged-in user (``?user=N``, default admin)."""
    fake = current_fake()
    portal = fake.state.find_portal(domain)
    if portal is None or request.args.get("client_id") != fake.state.main_client_id or not fake.redirect_uri:
        return Response("Bitrix24: the application cannot be authorized.", 400, content_type="text/plain")
    user = portal.user(request.args.get("user"))
    code = tokens.issue_auth_code(fake.state, fake.config, portal, user.id)
    query = {"code": code, "state": request.args.get("state", ""), "domain": portal.domain,
             "member_id": portal.member_id, "scope": fake.state.apps[fake.state.main_client_id].scope,
             "server_domain": fake.state.oauth_domain}
    return redirect(f"{fake.redirect_uri}?{urlencode(query)}")
