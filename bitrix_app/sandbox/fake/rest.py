"""Portal REST transport: ``/<domain>/rest/<method>[.json][/]``.

One request goes through, in this order (reference 4.6 and section 10 item 11):
injected faults -> leaky bucket (503) -> method lookup (404) -> token checks (401) ->
scope -> operating-time limit (429) -> the method. Errors found up to the method are
top-level and carry no ``time`` block; what a method returns is wrapped as a success,
which is why biconnector errors end up inside ``result`` with HTTP 200. A request that ran past
``config.rest_time_limit`` gets the front end's HTML 504 instead, whatever it did.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl

from flask import Blueprint, Response, request

from . import biconnector, methods, phpform
from .state import AccessToken, LeakyBucket, Portal, User
from .web import CORS_HEADERS, RestError, current_fake, json_response, time_block

bp = Blueprint("fake_portal_rest", __name__)

# Parameters the transport consumes before a method sees the rest.
TRANSPORT_PARAMS = ("auth", "access_token", "state", "start")

# A method needing scope X also accepts these scopes in the token.
SCOPE_ALIASES = {"user": {"user", "user_basic", "user_brief"}}


@dataclass
class MethodSpec:
    handler: Callable[["Call"], Any]
    scope: str | None = None  # None: the global scope, available to every token


@dataclass
class Call:
    """Everything a method handler needs to know about the request it serves."""

    fake: Any
    portal: Portal
    access: AccessToken
    params: dict
    run_sub_call: Callable[[str, dict], "Outcome"] = field(repr=False)
    started_at: float = 0.0  # on the fake's clock

    def out_of_time(self) -> bool:
        """Whether the request's time limit (config.rest_time_limit) is used up."""
        limit = self.config.rest_time_limit
        return limit is not None and self.state.clock.now() - self.started_at >= limit

    @property
    def state(self):
        return self.fake.state

    @property
    def config(self):
        return self.fake.config

    @property
    def user(self) -> User:
        return self.portal.users[self.access.user_id]

    @property
    def client_id(self) -> str:
        return self.access.client_id


@dataclass
class Outcome:
    result: Any = None
    time: dict | None = None
    error: RestError | None = None
    client_id: str | None = None


METHODS: dict[str, MethodSpec] = {
    name: MethodSpec(handler, scope)
    for name, (handler, scope) in {**methods.METHODS, **biconnector.METHODS}.items()
}


@bp.route("/<domain>/rest/<path:method_path>", methods=["GET", "POST", "OPTIONS"])
def portal_rest(domain: str, method_path: str) -> Response:
    fake = current_fake()
    if request.method == "OPTIONS":
        return Response(status=200, headers=CORS_HEADERS)
    if domain in fake.state.rest_redirects:
        return _redirect(fake.state.rest_redirects[domain], method_path)
    portal = fake.state.find_portal(domain)
    if portal is None:
        return _moved_or_missing(fake, domain, method_path)
    method = method_name(method_path)
    if "/" in method:
        # /rest/<user_id>/<code>/<method>: incoming webhooks are not modelled by the fake.
        error = RestError("INVALID_CREDENTIALS", "Invalid request credentials", 401)
        return _finish(fake, portal, method, Outcome(error=error))

    refusal = _injected_failure(portal)
    if refusal is None:
        refusal = _rate_limited(fake, portal, request.remote_addr or "")
    if refusal is not None:
        _log(fake, portal, method, refusal.status_code, _error_code(refusal))
        return refusal

    params = request_params()
    token = extract_token(params)
    for name in TRANSPORT_PARAMS:
        params.pop(name, None)
    started = fake.state.clock.now()
    outcome = dispatch(fake, portal, method, params, token)
    limit = fake.config.rest_time_limit
    if limit is not None and fake.state.clock.now() - started > limit:
        _log(fake, portal, method, 504, "GATEWAY_TIMEOUT")
        return gateway_timeout()
    return _finish(fake, portal, method, outcome)


def gateway_timeout() -> Response:
    """What the cloud's front end answers when a request runs past its time limit."""
    return Response("<html><head><title>504 Gateway Time-out</title></head><body>"
                    "<h1>504 Gateway Time-out</h1></body></html>", 504, content_type="text/html")


def _moved_or_missing(fake, domain: str, method_path: str) -> Response:
    """After a rename the old address answers 302 to the new one (a naive client turns POST into GET)."""
    member_id = fake.state.old_domains.get(domain)
    if member_id is None:
        return json_response({"error": "PORTAL_NOT_FOUND", "error_description": "Portal not found"}, 404)
    return _redirect(fake.state.portals[member_id].client_endpoint, method_path)


def _redirect(rest_url: str, method_path: str) -> Response:
    location = f"{rest_url}{method_path}"
    if request.query_string:
        location += "?" + request.query_string.decode()
    return Response(status=302, headers={"Location": location, **CORS_HEADERS})


def method_name(path: str) -> str:
    path = path.rstrip("/")
    for suffix in (".json", ".xml"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    return path.lower()


def request_params() -> dict:
    """Query string first, then the body (JSON, else form/multipart, else raw query string)."""
    params = phpform.decode(request.args.items(multi=True))
    params.update(_body_params())  # shallow: body keys replace query keys
    return params


def _body_params() -> dict:
    if request.method != "POST":
        return {}
    mimetype = request.mimetype or ""
    if mimetype == "application/json" or mimetype.endswith("+json"):
        try:
            data = json.loads(request.get_data(as_text=True) or "null")
        except ValueError:
            return {}  # Bitrix ignores a broken JSON body silently
        return data if isinstance(data, dict) else {}
    if request.form:
        return phpform.decode(request.form.items(multi=True))
    raw = request.get_data(as_text=True).strip()
    return phpform.decode(parse_qsl(raw, keep_blank_values=True)) if raw else {}


def extract_token(params: dict) -> str | None:
    """``Authorization: Bearer``, then ``auth``, then ``access_token`` (array values ignored)."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer " and header[7:].strip():
        return header[7:].strip()
    for name in ("auth", "access_token"):
        value = params.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def dispatch(fake, portal: Portal, method: str, params: dict, token: str | None) -> Outcome:
    """Run one method call: a whole HTTP request, or one command of a batch."""
    start = fake.state.clock.now()
    try:
        spec = METHODS.get(method)
        if spec is None:
            raise RestError("ERROR_METHOD_NOT_FOUND", "Method not found!", 404)
        access = authenticate(fake, portal, token)
        _check_scope(fake, spec, access)
        _check_operation_limit(fake, portal, method)
        result = spec.handler(Call(fake, portal, access, params, _batch_runner(fake, portal, token), start))
        return Outcome(result=result, time=time_block(start, fake.state.clock.now()), client_id=access.client_id)
    except RestError as error:
        return Outcome(error=error)


def _batch_runner(fake, portal: Portal, token: str | None) -> Callable[[str, dict], Outcome]:
    """How ``batch`` runs its commands: same portal, the batch's own token, no rate limit."""

    def run_sub_call(method: str, params: dict) -> Outcome:
        params = {key: value for key, value in params.items() if key not in TRANSPORT_PARAMS}
        outcome = dispatch(fake, portal, method.lower(), params, token)
        error = outcome.error
        _log(fake, portal, method.lower(), error.status if error else 200, error.code if error else None,
             in_batch=True)
        return outcome

    return run_sub_call


def authenticate(fake, portal: Portal, token: str | None) -> AccessToken:
    state = fake.state
    if not token:
        raise RestError("NO_AUTH_FOUND", "Wrong authorization data", 401)
    with state.lock:
        access = state.access_tokens.get(token)
        if access is None or access.member_id != portal.member_id:
            raise RestError("invalid_token", "Unable to get application by token", 401)
        if not state.is_app_installed(portal, access.client_id):  # checked before expiry (reference 4.6)
            raise RestError("APPLICATION_NOT_FOUND", "Application not found", 401)
        if access.status == "rotated" or access.expires_at <= state.clock.now():
            raise RestError("expired_token", "The access token provided has expired", 401)
        if access.status == "revoked":  # revoked by an uninstall, app installed again since
            raise RestError("invalid_token", "Unable to get application by token", 401)
        return access


def _check_scope(fake, spec: MethodSpec, access: AccessToken) -> None:
    if spec.scope is None:
        return
    granted = set(access.scope.split(","))
    if not granted & SCOPE_ALIASES.get(spec.scope, {spec.scope}):
        status = 403 if fake.config.docs_statuses else 401
        raise RestError("insufficient_scope",
                        "The request requires higher privileges than provided by the access token", status)


def _check_operation_limit(fake, portal: Portal, method: str) -> None:
    if method in portal.operation_time_limit_methods:
        raise RestError("OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.", 429,
                        operating_reset_at=int(fake.state.clock.now()) + 600)


def _injected_failure(portal: Portal) -> Response | None:
    with portal.state.lock:
        if portal.html_5xx > 0:
            portal.html_5xx -= 1
            return Response("<html><head><title>500 Internal Server Error</title></head><body>"
                            "<h1>Internal Server Error</h1></body></html>", 500, content_type="text/html")
        if portal.inject_503 > 0:
            portal.inject_503 -= 1
            return query_limit_exceeded()
    return None


def _rate_limited(fake, portal: Portal, client_ip: str) -> Response | None:
    """Leaky bucket per portal and client IP: +1 per HTTP request, drains at a fixed rate."""
    config = fake.config
    if not config.rate_limit:
        return None
    if portal.enterprise:
        rate, burst = config.enterprise_rate_per_second, config.enterprise_burst
    else:
        rate, burst = config.rate_per_second, config.burst
    with fake.state.lock:
        now = fake.state.clock.now()
        bucket = portal.buckets.setdefault(client_ip, LeakyBucket(updated_at=now))
        bucket.level = max(0.0, bucket.level - max(0.0, now - bucket.updated_at) * rate)
        bucket.updated_at = now
        if bucket.level + 1 > burst:
            return query_limit_exceeded()
        bucket.level += 1
    return None


def query_limit_exceeded() -> Response:
    return json_response({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}, 503)


def _finish(fake, portal: Portal, method: str, outcome: Outcome) -> Response:
    if outcome.error is not None:
        _log(fake, portal, method, outcome.error.status, outcome.error.code)
        return json_response(outcome.error.body(), outcome.error.status)
    _log(fake, portal, method, 200, None)
    headers = {"X-Bitrix-Rest-Application": outcome.client_id} if outcome.client_id else {}
    return json_response({"result": outcome.result, "time": outcome.time}, 200, headers)


def _error_code(response: Response) -> str | None:
    body = response.get_json(silent=True)
    return body.get("error") if isinstance(body, dict) else "HTML_ERROR_PAGE"


def _log(fake, portal: Portal, method: str, status: int, error: str | None, in_batch: bool = False) -> None:
    fake.state.record_request({
        "portal": portal.domain,
        "member_id": portal.member_id,
        "method": method,
        "status": status,
        "error": error,
        "ts": fake.state.clock.now(),
        "in_batch": in_batch,
    })
