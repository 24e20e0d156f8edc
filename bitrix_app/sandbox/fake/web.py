"""HTTP helpers shared by the fake's blueprints: JSON as Bitrix writes it, errors, the time block."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from flask import Response, current_app

# Every REST response of a real portal carries these (rest_util.php, sendHeaders).
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "origin, content-type, accept",
    "X-Content-Type-Options": "nosniff",
}


class RestError(Exception):
    """A top-level REST error: ``{"error": code, "error_description": text, ...extra}``, no time block."""

    def __init__(self, code: str, description: str, status: int, **extra: Any) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.status = status
        self.extra = extra

    def body(self) -> dict:
        return {"error": self.code, "error_description": self.description, **self.extra}


def current_fake():
    return current_app.extensions["fake_bitrix24"]


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    escaping = current_fake().config.bitrix_json_escaping
    text = bitrix_json(body) if escaping else json.dumps(body)
    response = Response(text, status=status, content_type="application/json; charset=utf-8")
    response.headers.update(CORS_HEADERS)
    response.headers.update(headers or {})
    return response


def time_block(start: float, finish: float) -> dict:
    return {
        "start": start,
        "finish": finish,
        "duration": finish - start,
        "processing": finish - start,
        "date_start": _iso(start),
        "date_finish": _iso(finish),
        "operating": 0,
        "operating_reset_at": int(start) + 600,
    }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


# PHP's Json::encode uses JSON_HEX_TAG|HEX_AMP|HEX_APOS|HEX_QUOT and escapes slashes.
_PHP_ESCAPES = {'"': "\\u0022", "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "'": "\\u0027", "/": "\\/"}


def bitrix_json(value: Any) -> str:
    if isinstance(value, dict):
        members = (f"{_php_string(str(key))}:{bitrix_json(item)}" for key, item in value.items())
        return "{" + ",".join(members) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(bitrix_json(item) for item in value) + "]"
    if isinstance(value, str):
        return _php_string(value)
    return json.dumps(value)


def _php_string(text: str) -> str:
    return '"' + "".join(_PHP_ESCAPES.get(char) or json.dumps(char)[1:-1] for char in text) + '"'
