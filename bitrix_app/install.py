"""The installer page: Bitrix24 POSTs it into an iframe when an administrator installs the app."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from .connector import register_connectors
from .services import lifecycle
from .services.errors import BitrixError, Rejected

bp = Blueprint("install", __name__)


@bp.post("/install")
def install():
    # DOMAIN, PROTOCOL, LANG and APP_SID come in the query string, everything else in the body.
    # The posted DOMAIN is never trusted: the portal's address comes from the OAuth server.
    auth = lifecycle.authorization_from(request.form, names=lifecycle.INSTALLER_FIELDS)
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
