"""Calls from the portal to the outside: our app (installer, iframe, events) and connector endpoints.

Every call is form-encoded with PHP bracket keys and recorded: connector calls in
``state.outbound_calls``, calls to our app in ``state.app_calls``.
"""
from __future__ import annotations

import ipaddress
import socket
from http.cookiejar import DefaultCookiePolicy
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.util import SKIP_HEADER

from . import phpform

# What the module's HttpClient sends besides Host, Content-Type and Content-Length: no User-Agent,
# no auth, nothing that identifies the portal (reference 6.2).
CONNECTOR_HEADERS = {"User-Agent": SKIP_HEADER, "Accept-Encoding": SKIP_HEADER, "Accept": "*/*",
                     "Accept-Language": "en", "Connection": "close"}
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5


def _portal_http() -> requests.Session:
    """One session for every outbound call: the portal's client keeps no cookies between calls,
    reads no proxy settings and closes each connection (`Connection: close`, as the module does).
    Only the session's setup is shared, which keeps the fake cheap when a benchmark sends
    thousands of checks."""
    session = requests.Session()
    session.trust_env = False
    session.headers["Connection"] = "close"
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return session


_http = _portal_http()


def post_form(fake, url: str, data: dict | list, kind: str, timeout: float, *,
              raise_errors: bool = False, **details) -> requests.Response | None:
    """POST ``data`` (nested dict, or ready pairs) and record the call.

    Drivers (install, open_app) pass ``raise_errors`` so a test sees a dead app at once;
    events swallow transport errors, as the portal does.
    """
    pairs = data if isinstance(data, list) else phpform.encode(data)
    entry = {"kind": kind, "url": url, "form": dict(pairs), "status": None, "ok": False,
             "body": None, "error": None, "ts": fake.state.clock.now(), **details}
    try:
        response = _http.post(url, data=pairs, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        entry["error"] = f"{type(exc).__name__}: {exc}"
        fake.state.record_call(entry)
        if raise_errors:
            raise
        return None
    entry.update(status=response.status_code, ok=200 <= response.status_code < 300, body=response.text[:4000])
    fake.state.record_call(entry)
    return response


def build_query(data: dict) -> list[tuple[str, str]]:
    """PHP ``http_build_query``: like ``phpform.encode``, but booleans become 1 and 0."""
    def php_values(value):
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, dict):
            return {key: php_values(item) for key, item in value.items()}
        if isinstance(value, list):
            return [php_values(item) for item in value]
        return value

    return phpform.encode(php_values(data))


def call_connector(fake, url: str, data: dict, kind: str,
                   timeout: float) -> tuple[requests.Response | None, str | None]:
    """One call to a connector endpoint as the module's HttpClient makes it, recorded with ``kind``.

    Returns the final response, or None and why there was no answer (transport error, a refused
    private address, a sixth redirect).
    """
    pairs = build_query(data)
    entry = {"kind": kind, "url": url, "form": dict(pairs), "status": None, "ok": False, "body": None,
             "error": None, "ts": fake.state.clock.now(), "redirects": []}
    response, entry["error"] = _follow_redirects(fake, url, pairs, timeout, entry["redirects"])
    if response is not None:
        entry.update(status=response.status_code, ok=connector_answered(response), body=response.text[:4000])
    fake.state.record_call(entry)
    return response, entry["error"]


def _follow_redirects(fake, url: str, pairs: list, timeout: float,
                      redirects: list[str]) -> tuple[requests.Response | None, str | None]:
    """Up to 5 redirects, each hop checked for private addresses; 302/303 turn POST into GET."""
    method, body = "POST", pairs
    for _ in range(MAX_REDIRECTS + 1):
        if not fake.config.allow_local_connections and is_local_address(url):
            return None, "refused: local or private address"
        try:
            response = _http.request(method, url, data=body, headers=CONNECTOR_HEADERS,
                                        timeout=timeout, allow_redirects=False)
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}: {exc}"
        if response.status_code not in REDIRECT_STATUSES or "Location" not in response.headers:
            return response, None
        if response.status_code in (302, 303):
            method, body = "GET", None
        url = urljoin(url, response.headers["Location"])
        redirects.append(url)
    return None, f"more than {MAX_REDIRECTS} redirects"


def check_connection(fake, url: str, settings: dict) -> bool:
    """The module's connection check: POST ``connection[<code>]=<value>`` to ``urlCheck``."""
    response, _ = call_connector(fake, url, {"connection": settings}, "url_check", fake.config.url_check_timeout)
    if fake.config.url_check_delay > 0:
        fake.state.clock.advance(fake.config.url_check_delay)
    return response is not None and connector_answered(response)


def connector_answered(response: requests.Response) -> bool:
    """Success for every connector endpoint: HTTP 200 and a body PHP does not find falsy."""
    return response.status_code == 200 and response.text not in ("", "0")


def is_local_address(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(socket.gethostbyname(host))
    except (OSError, ValueError):
        return False
    return address.is_private or address.is_loopback or address.is_link_local or address.is_reserved
