"""The connector gateway's four endpoints, as Bitrix24 calls them (reference section 6):
form-encoded POSTs with PHP bracket keys to `/gateway/<portal key>/<endpoint>`.

Every answer is either 200 with the endpoint's JSON, or another status with
`{"error": CODE, "error_description": "..."}`; never a redirect (Bitrix24 would turn a 302 POST
into a GET). All logic lives in `gateway/service.py`.
"""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from .gateway.connectors import set_portal_lang, sync_connectors
from .gateway.service import Gateway, GatewayError
from .services import php_form

bp = Blueprint("connector", __name__, url_prefix="/gateway")

MAX_BODY_BYTES = 1024 * 1024
MAX_FORM_PARTS = 20_000  # a large filter is many bracket keys


def gateway() -> Gateway:
    return current_app.extensions["gateway"]


def register_connectors(member_id: str, lang: str | None = None) -> None:
    """After an install, update or re-authorization: make the app's connectors exist on the
    portal and match their definition (gateway/connectors.py)."""
    bitrix = current_app.extensions["bitrix"]
    if lang:
        set_portal_lang(bitrix, member_id, lang)
    sync_connectors(bitrix, gateway().settings, member_id)


@bp.route("/<portal_key>/<endpoint>", methods=["GET", "POST"], strict_slashes=False)
def serve(portal_key: str, endpoint: str):
    try:
        if request.method != "POST":
            raise GatewayError(405, "METHOD_NOT_ALLOWED", "Connector endpoints answer POST requests only.")
        if endpoint not in ENDPOINTS:
            raise GatewayError(404, "ENDPOINT_NOT_FOUND", "No such connector endpoint.")
        request.max_content_length = MAX_BODY_BYTES
        request.max_form_parts = MAX_FORM_PARTS
        values = php_form.decode(request.form.items(multi=True))
        caller = gateway().authenticate(portal_key, values)
        return ENDPOINTS[endpoint](caller, values)
    except GatewayError as exc:
        current_app.logger.info("Gateway %s answered %s %s", endpoint.encode("unicode_escape").decode()[:40],
                                exc.status, exc.code)
        return jsonify(exc.to_dict()), exc.status


def _check(caller, _values):
    return jsonify(gateway().check(caller))


def _tables(caller, values):
    search = values.get("searchString")
    return jsonify(gateway().table_list(caller, search if isinstance(search, str) else ""))


def _describe(caller, values):
    return jsonify(gateway().describe(caller, values.get("table")))


def _data(caller, values):
    return Response(gateway().data(caller, values), status=200, content_type="application/json")


ENDPOINTS = {"check": _check, "tables": _tables, "describe": _describe, "data": _data}
