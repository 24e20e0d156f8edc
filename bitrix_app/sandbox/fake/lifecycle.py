"""The portal as a client of our app: installer and iframe POSTs, app events, update, uninstall.

Iframe POSTs put DOMAIN, PROTOCOL, LANG and APP_SID in the query string and everything else in
the form body. Events are form-encoded with bracket keys (``auth[application_token]``), are
sent only once the app is installed (ONAPPUNINSTALL excepted) and are never retried.
"""
from __future__ import annotations

import json
import secrets
from urllib.parse import urlencode

from . import tokens
from .outbound import post_form
from .state import Portal, User

# Events whose auth block carries a refresh token (ONAPPUPDATE: config.update_event_refresh_token).
EVENTS_WITH_REFRESH_TOKEN = {"ONAPPINSTALL", "ONAPPUPDATE", "ONOFFLINEEVENT"}


# --- iframe opens ---------------------------------------------------------------------------

def frame_request(fake, portal: Portal, user: User, placement: str = "DEFAULT",
                  placement_options: dict | None = None, lang: str = "en") -> tuple[dict, dict]:
    """The query and form fields of one iframe open, with a fresh token chain of ``user``."""
    access, refresh = tokens.issue_pair(fake.state, fake.config, portal, user.id)
    query = {"DOMAIN": portal.domain, "PROTOCOL": "0", "LANG": lang, "APP_SID": secrets.token_hex(16)}
    form = {
        "AUTH_ID": access.value,
        "AUTH_EXPIRES": str(fake.config.access_ttl),
        "REFRESH_ID": refresh.value,
        "SERVER_ENDPOINT": fake.state.server_endpoint,
        "APPLICATION_TOKEN": portal.application_token,
        "APPLICATION_SCOPE": access.scope,
        "member_id": portal.member_id,
        "status": portal.app_status,
        "PLACEMENT": placement,
        "PLACEMENT_OPTIONS": json.dumps(placement_options or {}),
    }
    return query, form


def with_query(url: str, query: dict) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(query)}"


def install(fake, portal: Portal, user: User | int | None = None, ui: bool = True):
    """Start an install: UI apps get their installer POSTed; no-UI apps are installed at once."""
    user = portal.user(user)
    mark_added(portal)
    if ui:
        query, form = frame_request(fake, portal, user)
        return post_form(fake, with_query(f"{fake.app_url}/install", query), form, "install",
                         fake.config.event_timeout, raise_errors=True)
    with fake.state.lock:
        portal.app_state = "installed"
    # No-UI apps get ONAPPINSTALL at their install handler URL, not at an event.bind handler.
    payload = event_payload(fake, portal, "ONAPPINSTALL", _app_event_data(portal), user, handler_id=None)
    return post_form(fake, f"{fake.app_url}/events", payload, "event", fake.config.event_timeout,
                     raise_errors=True, event="ONAPPINSTALL")


def mark_added(portal: Portal) -> None:
    """The administrator added the app: installer pending. A re-added app gets a new app token."""
    with portal.state.lock:
        if portal.app_state == "uninstalled":
            portal.application_token = secrets.token_hex(16)
        if portal.app_state != "installed":
            portal.app_state = "added"


def finish_install(fake, portal: Portal):
    """What BX24.installFinish() does: the app counts as installed from now on."""
    with fake.state.lock:
        portal.app_state = "installed"
    if not fake.config.install_event_on_finish:
        return None
    return _first(deliver(fake, portal, "ONAPPINSTALL", _app_event_data(portal)))


def open_app(fake, portal: Portal, user: User | int | None = None, placement: str = "DEFAULT",
             placement_options: dict | None = None, lang: str = "en"):
    """POST the app page (or a bound placement's handler) like an iframe open."""
    user = portal.user(user)
    handler = placement_handler(fake, portal, placement) or f"{fake.app_url}/app"
    query, form = frame_request(fake, portal, user, placement, placement_options, lang)
    return post_form(fake, with_query(handler, query), form, "open_app", fake.config.event_timeout,
                     raise_errors=True)


def placement_handler(fake, portal: Portal, placement: str) -> str | None:
    if placement == "DEFAULT":
        return None
    with fake.state.lock:
        for record in portal.placements:
            if record["placement"] == placement and record["client_id"] == fake.state.main_client_id:
                return record["handler"]
    return None


# --- lifecycle events -----------------------------------------------------------------------

def update_app(fake, portal: Portal):
    """A new app version: new application_token, ONAPPUPDATE, event handlers removed.

    The ONAPPUPDATE handler is looked up first. By default the event is delivered and the
    handlers are removed afterwards (so handlers re-bound while handling it are lost); with
    ``handlers_removed_before_update_event`` they are removed first (re-binds survive).
    """
    with fake.state.lock:
        previous = portal.app_version
        portal.app_version += 1
        portal.application_token = secrets.token_hex(16)
    handlers = _bound_handlers(fake, portal, "ONAPPUPDATE") if portal.installed else []
    data = {"VERSION": str(portal.app_version), "PREVIOUS_VERSION": str(previous), "LANGUAGE_ID": portal.language}
    removed_first = fake.config.handlers_removed_before_update_event
    if removed_first:
        _remove_event_handlers(fake, portal)
    responses = [_post_event(fake, portal, "ONAPPUPDATE", record, data) for record in handlers]
    if not removed_first:
        _remove_event_handlers(fake, portal)
    return _first(responses)


def uninstall(fake, portal: Portal, clean: bool = False):
    """Revoke every token first, then tell the app (no tokens), then drop its handlers."""
    main = fake.state.main_client_id
    tokens.revoke_app_tokens(fake.state, portal, main)
    with fake.state.lock:
        portal.app_state = "uninstalled"
    data = {"LANGUAGE_ID": portal.language, "CLEAN": "1" if clean else "0"}
    responses = deliver(fake, portal, "ONAPPUNINSTALL", data, require_installed=False, with_tokens=False)
    with fake.state.lock:
        _remove_event_handlers(fake, portal)
        portal.placements[:] = [item for item in portal.placements if item["client_id"] != main]
    return _first(responses)


def _remove_event_handlers(fake, portal: Portal) -> None:
    main = fake.state.main_client_id
    with fake.state.lock:
        portal.bound_events[:] = [record for record in portal.bound_events if record["client_id"] != main]


def _app_event_data(portal: Portal) -> dict:
    return {"VERSION": str(portal.app_version), "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": portal.language}


def _first(responses: list):
    return responses[0] if responses else None


# --- delivery -------------------------------------------------------------------------------

def deliver(fake, portal: Portal, event_name: str, data: dict | None = None, *,
            with_tokens: bool = True, require_installed: bool = True) -> list:
    """Send an event the way the portal does: to every handler our app bound for it, and only
    once the app is installed (ONAPPUNINSTALL excepted). One response (or None) per handler."""
    if require_installed and not portal.installed:
        return []
    return [_post_event(fake, portal, event_name, record, data, with_tokens=with_tokens)
            for record in _bound_handlers(fake, portal, event_name)]


def send_event(fake, portal: Portal, event_name: str, data: dict | None = None,
               auth_overrides: dict | None = None, user: User | int | None = None,
               with_tokens: bool | None = None):
    """Low-level, for forged and edge-case tests: no install-state check; goes to the bound
    handlers, or to ``{app_url}/events`` when none is bound. Returns the first response."""
    event_name = event_name.upper()
    if with_tokens is None:
        with_tokens = event_name != "ONAPPUNINSTALL"
    handlers = _bound_handlers(fake, portal, event_name) or [
        {"id": None, "handler": f"{fake.app_url}/events", "auth_type": 0}]
    return _first([_post_event(fake, portal, event_name, record, data, user=user, with_tokens=with_tokens,
                               auth_overrides=auth_overrides) for record in handlers])


def _bound_handlers(fake, portal: Portal, event_name: str) -> list[dict]:
    with fake.state.lock:
        return [dict(record) for record in portal.bound_events
                if record["event"] == event_name.upper() and not record["offline"]
                and record["client_id"] == fake.state.main_client_id]


def _post_event(fake, portal: Portal, event_name: str, record: dict, data: dict | None, *,
                user: User | int | None = None, with_tokens: bool = True, auth_overrides: dict | None = None):
    # Tokens belong to the handler's auth_type user if it set one, else to the acting user (admin).
    recipient = portal.user(record["auth_type"] if record["auth_type"] in portal.users else user)
    payload = event_payload(fake, portal, event_name.upper(), data, recipient, handler_id=record["id"],
                            with_tokens=with_tokens, auth_overrides=auth_overrides)
    return post_form(fake, record["handler"], payload, "event", fake.config.event_timeout, event=event_name.upper())


def _carries_refresh_token(fake, event_name: str) -> bool:
    if event_name == "ONAPPUPDATE":
        return fake.config.update_event_refresh_token
    return event_name in EVENTS_WITH_REFRESH_TOKEN


def event_payload(fake, portal: Portal, event_name: str, data: dict | None, user: User, *,
                  handler_id: int | None, with_tokens: bool = True, auth_overrides: dict | None = None) -> dict:
    state = fake.state
    auth: dict = {}
    refresh = None
    if with_tokens:
        access, refresh = tokens.issue_pair(state, fake.config, portal, user.id)
        auth.update(access_token=access.value, expires_in=str(fake.config.access_ttl), scope=access.scope)
    auth.update(domain=portal.domain, server_endpoint=state.server_endpoint)
    if with_tokens:
        auth["status"] = portal.app_status
    auth.update(client_endpoint=portal.client_endpoint, member_id=portal.member_id)
    if refresh is not None and _carries_refresh_token(fake, event_name):
        auth["refresh_token"] = refresh.value
    auth["application_token"] = portal.application_token
    for key, value in (auth_overrides or {}).items():
        if value is None:
            auth.pop(key, None)
        else:
            auth[key] = value
    payload = {"event": event_name}
    if handler_id is not None:
        payload["event_handler_id"] = str(handler_id)
    payload.update(data=data or {}, ts=str(int(state.clock.now())), auth=auth)
    return payload
