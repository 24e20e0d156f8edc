"""POST /app: the app's main page and placement handler, shown by Bitrix24 in an iframe.

DOMAIN, PROTOCOL, LANG and APP_SID come in the query string, everything else in the POST body
(reference 2.2). The posted DOMAIN is never trusted: the user is confirmed by the portal's stored
REST endpoint, and the page may only be framed by the portal's stored address.

The page gets a short-lived session token for the JSON API and nothing else: no Bitrix24 token
(AUTH_ID, REFRESH_ID or stored ones) and no source secret ever reaches it.
"""
from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, current_app, make_response, render_template, request, url_for

from . import error_response
from .api import session_tokens
from .install import client_network
from .models import PortalStatus
from .services.lifecycle import token_lifetime
from .services.messages import normalize_lang, ui_texts
from .services.session_tokens import ReseedGrant, ReseedGrants, TabSession
from .services.tab import TabUser, Throttled, authenticate_opening

bp = Blueprint("placement", __name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$")
_PATH = re.compile(r"^[A-Za-z0-9/._~-]*$")


@bp.post("/app")
def open_tab():
    lang = normalize_lang(request.args.get("LANG"))
    bitrix = current_app.extensions["bitrix"]
    user = authenticate_opening(bitrix, request.form, lang, client_network(request.remote_addr), request.args)
    tokens = session_tokens()
    token = tokens.issue(_session_for(user, lang))
    page = render_template(
        "app.html",
        lang=lang,
        texts=ui_texts(lang),
        session_token=token,
        sdk_url=current_app.config["BITRIX_JS_SDK_URL"],
        static_url=_static_url,
        config={
            "lang": lang,
            "texts": ui_texts(lang),
            "user": {"id": user.user_id, "name": user.name, "isAdmin": user.is_admin, "canEdit": user.can_edit},
            "portal": {"domain": user.portal_domain, "status": user.portal_status},
            "placement": str(request.form.get("PLACEMENT") or "DEFAULT"),
            "placementOptions": _placement_options(request.form.get("PLACEMENT_OPTIONS")),
            "apiBase": url_for("api.list_connectors").rsplit("/", 1)[0],
            "sessionTtl": tokens.ttl,
            "gateway": {"kinds": list(current_app.extensions["gateway"].settings.kinds)},
        },
    )
    return page, 200, _page_headers(user)


@bp.errorhandler(Throttled)
def throttled(exc: Throttled):
    """Admission control refused the opening (too many unverified openings, or the portal's queue
    is full): the error page, and when to try again."""
    response = make_response(error_response(exc.status, exc.code, exc.description))
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _session_for(user: TabUser, lang: str) -> TabSession:
    handle = None
    if user.is_admin and user.portal_status in PortalStatus.RESEEDABLE:
        # The admin's own tokens stay on the server; the page gets a handle only POST /api/reseed can use.
        bitrix = current_app.extensions["bitrix"]
        grant = ReseedGrant(request.form["AUTH_ID"], str(request.form.get("REFRESH_ID") or ""),
                            token_lifetime(request.form.get("AUTH_EXPIRES")))
        handle = ReseedGrants(bitrix.session_factory, bitrix.tokens.cipher).keep(user.member_id, user.user_id, grant)
    return TabSession(user.member_id, user.user_id, user.is_admin, user.can_edit, lang, handle,
                      user.install_generation)


def _placement_options(raw) -> dict:
    """PLACEMENT_OPTIONS is a JSON string; anything else is ignored, never an error."""
    try:
        options = json.loads(raw or "{}")
    except (TypeError, ValueError, RecursionError):
        return {}
    return options if isinstance(options, dict) else {}


# --- headers ---------------------------------------------------------------------------------

def frame_ancestors(user: TabUser) -> str:
    """The portal's stored address (https), plus its REST endpoint's origin when that differs
    (a portal reached over http, as in the sandbox)."""
    sources = []
    if _HOST.match(user.portal_domain or ""):
        sources.append(f"https://{user.portal_domain}")
    endpoint = urlsplit(user.client_endpoint or "")
    if endpoint.scheme in ("http", "https") and _HOST.match(endpoint.netloc):
        origin = f"{endpoint.scheme}://{endpoint.netloc}"
        if origin not in sources:
            sources.append(origin)
    return " ".join(sources) or "'none'"


def script_source(url: str) -> str:
    """The CSP source for BX24.js: its host and path (a path ending in / allows what lies below it)."""
    parts = urlsplit(url)
    if not _HOST.match(parts.netloc or "") or not _PATH.match(parts.path):
        return ""
    return f"{parts.scheme + '://' if parts.scheme else ''}{parts.netloc}{parts.path}"


def _page_headers(user: TabUser) -> dict:
    script_src = " ".join(filter(None, ["'self'", script_source(current_app.config["BITRIX_JS_SDK_URL"])]))
    policy = "; ".join([
        "default-src 'self'",
        f"script-src {script_src}",
        "style-src 'self'",
        "img-src 'self' data:",  # no remote images: an editor's logo URL would watch every reader (tab.js)
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        f"frame-ancestors {frame_ancestors(user)}",
    ])
    return {
        "Content-Security-Policy": policy,
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }


# --- static files with a content hash, so a new release is never served from a stale cache ----

@lru_cache(maxsize=None)
def _fingerprint(filename: str) -> str:
    return hashlib.sha256((STATIC_DIR / filename).read_bytes()).hexdigest()[:12]


def _static_url(filename: str) -> str:
    return url_for("static", filename=filename, v=_fingerprint(filename))
