"""Calls from the portal to the outside: our app (installer, iframe, events) and connector endpoints.

Every call is form-encoded with PHP bracket keys and recorded: connector calls in
``state.outbound_calls``, calls to our app in ``state.app_calls``.
"""
from __future__ import annotations

import ipaddress
import socket
from typing import Callable
from urllib.parse import urlsplit

import requests

from . import phpform


def post_form(fake, url: str, data: dict | list, kind: str, timeout: float, *,
              success: Callable[[requests.Response], bool] | None = None,
              raise_errors: bool = False, **details) -> requests.Response | None:
    """POST ``data`` (nested dict, or ready pairs) and record the call.

    Drivers (install, open_app) pass ``raise_errors`` so a test sees a dead app at once;
    events and connector checks swallow transport errors, as the portal does.
    """
    pairs = data if isinstance(data, list) else phpform.encode(data)
    entry = {"kind": kind, "url": url, "form": dict(pairs), "status": None, "ok": False,
             "body": None, "error": None, "ts": fake.state.clock.now(), **details}
    try:
        response = requests.post(url, data=pairs, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        entry["error"] = f"{type(exc).__name__}: {exc}"
        fake.state.record_call(entry)
        if raise_errors:
            raise
        return None
    judge = success or (lambda reply: 200 <= reply.status_code < 300)
    entry.update(status=response.status_code, ok=judge(response), body=response.text[:4000])
    fake.state.record_call(entry)
    return response


def check_connection(fake, url: str, settings: dict) -> bool:
    """The module's connection check: POST ``connection[<code>]=<value>`` to ``urlCheck``.

    Success is HTTP 200 with a non-empty body; ``0`` counts as empty (PHP falsiness).
    """
    data = {"connection": settings}
    if not fake.config.allow_local_connections and is_local_address(url):
        fake.state.record_call({"kind": "url_check", "url": url, "form": dict(phpform.encode(data)),
                                    "status": None, "ok": False, "body": None,
                                    "error": "refused: local or private address", "ts": fake.state.clock.now()})
        return False
    response = post_form(fake, url, data, "url_check", fake.config.url_check_timeout, success=connector_answered)
    return response is not None and connector_answered(response)


def connector_answered(response: requests.Response) -> bool:
    return response.status_code == 200 and response.text not in ("", "0")


def is_local_address(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(socket.gethostbyname(host))
    except (OSError, ValueError):
        return False
    return address.is_private or address.is_loopback or address.is_link_local or address.is_reserved
