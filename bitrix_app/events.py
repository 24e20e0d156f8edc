"""POST /events: Bitrix24's form-encoded app events (ONAPPINSTALL, ONAPPUPDATE, ONAPPUNINSTALL)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .services import lifecycle, php_form

bp = Blueprint("events", __name__)


@bp.post("/events")
def receive():
    payload = php_form.decode(request.form.items(multi=True))
    outcome = lifecycle.handle_event(current_app.extensions["bitrix"], payload)
    return jsonify(result=outcome)
