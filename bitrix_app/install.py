"""The installer page: Bitrix24 POSTs it into an iframe when an administrator installs the app.

Also the per-address budget for requests that make the app verify an authorization with Bitrix24
(the installer page and /events), so anonymous POSTs cannot turn the app into a pump of app.info calls.
"""
from __future__ import annotations

import ipaddress
import math

from flask import Blueprint, current_app, render_template, request
from werkzeug.exceptions import TooManyRequests

from .connector import register_connectors
from .services import lifecycle
from .services.errors import BitrixError, Rejected
from .services.ratelimit import HEADROOM, BucketStore, DatabaseBuckets, Rate, RedisBuckets

bp = Blueprint("install", __name__)

VERIFY_KEY_PREFIX = "verify:"


@bp.post("/install")
def install():
    # DOMAIN, PROTOCOL, LANG and APP_SID come in the query string, everything else in the body.
    # The posted DOMAIN is never trusted: the portal's address comes from the OAuth server.
    auth = lifecycle.authorization_from(request.form, names=lifecycle.INSTALLER_FIELDS)
    spend_verification_budget()
    bitrix = current_app.extensions["bitrix"]
    try:
        portal = lifecycle.install(bitrix, auth)
    except BitrixError as exc:
        raise Rejected(502, exc.code, "The app was authorized, but Bitrix24 refused to register its event handlers: "
                       + exc.description) from None
    try:
        register_connectors(portal.member_id, request.args.get("LANG"))
    except BitrixError as exc:
        raise Rejected(502, exc.code, "The app was authorized, but Bitrix24 refused to register its BI Builder "
                       "connectors: " + exc.description) from None
    return render_template(
        "install.html",
        domain=portal.domain,
        lang=request.args.get("LANG", "en"),
        sdk_url=current_app.config["BITRIX_JS_SDK_URL"],
    )


# --- verification budget --------------------------------------------------------------------

def spend_verification_budget() -> None:
    """Count this request against its client address; 429 with Retry-After once the budget is spent.

    VERIFY_RATE_PER_MINUTE requests per minute and address, up to a minute's worth at once; 0 turns
    the budget off. Refused requests count too, so a client that keeps knocking waits longer.
    """
    per_minute = float(current_app.config.get("VERIFY_RATE_PER_MINUTE") or 0)
    if per_minute <= 0:
        return
    # capacity is burst minus the limiter's headroom: a full minute's worth, exactly
    rate = Rate(per_second=per_minute / 60, burst=math.ceil(per_minute) + HEADROOM)
    wait = verification_buckets().reserve(VERIFY_KEY_PREFIX + client_network(request.remote_addr), rate)
    if wait > 0:
        seconds = math.ceil(wait)
        raise TooManyRequests(f"Too many requests from your address asked the app to verify an authorization with "
                              f"Bitrix24; try again in {seconds} seconds.", retry_after=seconds)


def verification_buckets() -> BucketStore:
    """The shared rate-limit store (Redis when REDIS_URL is set, else the database), made once per app."""
    store = current_app.extensions.get("verification_buckets")
    if store is None:
        bitrix = current_app.extensions["bitrix"]
        redis_url = bitrix.settings.redis_url
        store = RedisBuckets(redis_url) if redis_url else DatabaseBuckets(bitrix.session_factory)
        current_app.extensions["verification_buckets"] = store
    return store


def client_network(address: str | None) -> str:
    """The client's address; for IPv6 its /64, which one client gets whole and can rotate inside."""
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network((int(parsed), 64), strict=False))
