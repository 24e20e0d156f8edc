"""POST /events: Bitrix24's form-encoded app events (ONAPPINSTALL, ONAPPUPDATE, ONAPPUNINSTALL)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .connector import register_connectors
from .install import spend_verification_budget
from .logging_setup import escaped
from .services import lifecycle, php_form
from .services.errors import BitrixError, Rejected

bp = Blueprint("events", __name__)


@bp.post("/events")
def receive():
    payload = php_form.decode(request.form.items(multi=True))
    spend_verification_budget()  # ONAPPINSTALL and ONAPPUPDATE ask the OAuth server, ONAPPUNINSTALL the portal
    try:
        outcome = lifecycle.handle_event(current_app.extensions["bitrix"], payload)
        if outcome in ("installed", "updated"):
            data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
            register_connectors(str(payload["auth"]["member_id"]), str(data.get("LANGUAGE_ID") or "") or None)
    except Rejected as exc:
        current_app.logger.warning("Event %s rejected: %s", escaped(payload.get("event")), exc.code)
        raise
    except BitrixError as exc:  # e.g. re-binding handlers after an update failed
        raise Rejected(502, exc.code, "Bitrix24 failed while the event was handled: " + exc.description) from None
    return jsonify(result=outcome)
