"""Check connector and source fields before calling Bitrix24, the way its server checks them.

Mirrors the reference (sections 5.3-5.5) for *update* calls: unknown keys, read-only and
immutable fields, types (`integer` the PHP `is_numeric` way, strict booleans), lengths, and the
connector settings rules. Unlike the server, which returns only its first error, these helpers
return every error, so a form can show each one next to its field. Where the server has a code
we use it; the few extra checks (http(s) URLs, declared setting codes, INT values, duplicate
setting codes) have codes of our own without the `VALIDATION_` prefix.

Used by the tab's API, the CLI and plans. Plain Python: no Flask, and no I/O except
`EndpointPolicy`, which resolves the host of a changed connector URL (through a resolver that
tests replace) to check its addresses; nothing here ever connects.
"""
from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import Callable, NamedTuple
from urllib.parse import urlsplit

from ..gateway.addresses import ADDRESS_NOT_ALLOWED, AddressRefused, Network, resolve_checked

TITLE_MAX = 512
URL_MAX = 2048
SETTING_NAME_MAX = 512
SETTING_CODE_MAX = 512
SOURCE_CODE_MAX = 64
SETTING_TYPES = ("STRING", "INT")
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
URL_FIELDS = ("urlCheck", "urlData", "urlTableList", "urlTableDescription")

# Schemas in the order Bitrix24 checks them: field -> (type, read_only, immutable).
CONNECTOR_SCHEMA: dict[str, tuple[str, bool, bool]] = {
    "id": ("integer", True, False),
    "title": ("string", False, False),
    "logo": ("string", False, False),
    "description": ("string", False, False),
    "sort": ("integer", False, False),
    "urlCheck": ("string", False, False),
    "urlData": ("string", False, False),
    "urlTableList": ("string", False, False),
    "urlTableDescription": ("string", False, False),
    "settings": ("array", False, False),
    "dateCreate": ("datetime", True, False),
    "supportMapping": ("boolean", False, False),
    "sourceCode": ("string", False, False),
}
SOURCE_SCHEMA: dict[str, tuple[str, bool, bool]] = {
    "id": ("integer", True, False),
    "title": ("string", False, False),
    "type": ("string", True, False),
    "code": ("string", True, False),
    "description": ("string", False, False),
    "active": ("boolean", False, False),
    "dateCreate": ("datetime", True, False),
    "dateUpdate": ("datetime", True, False),
    "createdById": ("integer", True, False),
    "updatedById": ("integer", True, False),
    "connectorId": ("integer", False, True),
    "settings": ("array", False, False),
}
# Connector fields Bitrix24 needs non-empty (required on add; an empty value fails the save).
CONNECTOR_NON_EMPTY = ("title", "logo") + URL_FIELDS

_INTEGER_STRING = re.compile(r"^\s*[+-]?[0-9]+\s*$")  # ASCII digits only, like PHP
_DATA_IMAGE_URI = re.compile(r"^data:image/[a-z0-9.+-]+(;[a-z0-9=.+-]+)*;base64,[A-Za-z0-9+/=\s]+$", re.I)


class FieldError(NamedTuple):
    field: str  # "title", "settings[2].code", "settings.password"
    code: str
    message: str


# --- small predicates ------------------------------------------------------------------------

def is_integer(value) -> bool:
    """An integer the way Bitrix24's `is_numeric` check sees it: 12, "12", 12.0 (never True)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return INT_MIN <= value <= INT_MAX
    if isinstance(value, float):
        return value.is_integer() and INT_MIN <= value <= INT_MAX
    if isinstance(value, str) and _INTEGER_STRING.match(value):
        return INT_MIN <= int(value) <= INT_MAX
    return False


def is_http_url(value: str) -> bool:
    parts = urlsplit(value.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in value.strip()


def is_logo(value: str) -> bool:
    return is_http_url(value) or bool(_DATA_IMAGE_URI.match(value.strip()))


def _has_type(value, expected: str) -> bool:
    if expected == "integer":
        return is_integer(value)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "array":
        return isinstance(value, (list, dict))
    return True  # datetime: the server does not check it


# --- the generic steps of section 5.3 -------------------------------------------------------

def _generic_errors(fields, schema: dict[str, tuple[str, bool, bool]]) -> list[FieldError]:
    if not isinstance(fields, dict) or not fields:
        return [FieldError("fields", "VALIDATION_FIELDS_NOT_PROVIDED", "Fields not provided.")]
    errors = [
        FieldError(str(key), "VALIDATION_UNKNOWN_PARAMETERS", f"Unknown parameters: {key}")
        for key in fields
        if key not in schema
    ]
    for name, (kind, read_only, immutable) in schema.items():
        if name not in fields:
            continue
        if read_only:
            errors.append(FieldError(name, "VALIDATION_READ_ONLY_FIELD", f'Field "{name}" is read only.'))
        elif immutable:
            errors.append(FieldError(name, "VALIDATION_IMMUTABLE_FIELD", f'Field "{name}" is immutable.'))
        elif not _has_type(fields[name], kind):
            errors.append(FieldError(name, "VALIDATION_INVALID_FIELD_TYPE", f'Field "{name}" must be of type {kind}.'))
    return errors


def _with_type_ok(fields: dict, errors: list[FieldError], schema) -> dict:
    """The fields that passed the generic checks, for the field-specific checks."""
    failed = {error.field for error in errors}
    return {key: value for key, value in fields.items() if key in schema and key not in failed}


def _length_error(field: str, value: str, limit: int) -> FieldError | None:
    if len(value) > limit:
        return FieldError(field, "BX_INVALID_VALUE", f'Field "{field}" must be at most {limit} characters long.')
    return None


def _empty_error(field: str, value: str) -> FieldError | None:
    if not value.strip():
        return FieldError(field, "BX_EMPTY_REQUIRED", f'Field "{field}" must not be empty.')
    return None


# --- connectors ------------------------------------------------------------------------------

def connector_errors(fields: dict) -> list[FieldError]:
    """Every reason `biconnector.connector.update` would refuse these fields (empty: none)."""
    errors = _generic_errors(fields, CONNECTOR_SCHEMA)
    if errors and errors[0].code == "VALIDATION_FIELDS_NOT_PROVIDED":
        return errors
    checked = _with_type_ok(fields, errors, CONNECTOR_SCHEMA)
    for name in CONNECTOR_NON_EMPTY:
        if name in checked:
            errors.extend(filter(None, [_empty_error(name, checked[name])]))
    if "title" in checked:
        errors.extend(filter(None, [_length_error("title", checked["title"], TITLE_MAX)]))
    if "sourceCode" in checked:
        errors.extend(filter(None, [_length_error("sourceCode", checked["sourceCode"], SOURCE_CODE_MAX)]))
    for name in URL_FIELDS:
        if name in checked and checked[name].strip():
            errors.extend(_url_errors(name, checked[name]))
    if "logo" in checked and checked["logo"].strip() and not is_logo(checked["logo"]):
        errors.append(FieldError("logo", "INVALID_URL", 'Field "logo" must be an http(s) URL or a data:image URI.'))
    if "settings" in checked:
        errors.extend(connector_settings_errors(checked["settings"]))
    return errors


def _url_errors(field: str, value: str) -> list[FieldError]:
    too_long = _length_error(field, value, URL_MAX)
    if too_long:
        return [too_long]
    if not is_http_url(value):
        return [FieldError(field, "INVALID_URL", f'Field "{field}" must be an http:// or https:// URL.')]
    return []


# --- where connector URLs may point ------------------------------------------------------------

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class EndpointPolicy:
    """Connector endpoint URLs must point to public hosts, by the gateway's address rule
    (gateway/addresses.py): loopback, private, link-local and metadata addresses only when
    `allowed` (GATEWAY_ALLOWED_NETWORKS) lists them. On every `source.update` Bitrix24 posts all
    stored setting values of the source to the connector's urlCheck, so an endpoint on an inner
    host would hand the source's secrets to it. Host names are resolved, never connected to."""

    allowed: tuple[Network, ...] = ()
    resolver: Callable[..., list] = socket.getaddrinfo

    def errors(self, fields: dict) -> list[FieldError]:
        """One error per URL field in `fields` whose host is not allowed (call it with changed
        fields only: every name in them is resolved)."""
        errors = []
        for name in URL_FIELDS:
            value = fields.get(name)
            if isinstance(value, str) and is_http_url(value):
                errors.extend(filter(None, [self._error(name, value.strip())]))
        return errors

    def _error(self, field: str, url: str) -> FieldError | None:
        parts = urlsplit(url)
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            return FieldError(field, "INVALID_PORT", f'Field "{field}" has an invalid port number.')
        try:
            resolve_checked(parts.hostname or "", port, self.allowed, self.resolver)
        except AddressRefused as refused:
            return FieldError(field, refused.code, _refusal(field, parts.hostname or "", refused))
        return None


def _refusal(field: str, host: str, refused: AddressRefused) -> str:
    if refused.code == ADDRESS_NOT_ALLOWED:
        return (f'Field "{field}" must point to a public host, because Bitrix24 sends the stored source '
                f"settings to connector URLs: {refused.message}")
    return f'Field "{field}": the host {host!r} cannot be checked ({refused.message})'


def connector_settings_errors(settings) -> list[FieldError]:
    """The four VALIDATION_SETTINGS_* checks per row, in the server's order, plus duplicates."""
    if not isinstance(settings, list):
        return [FieldError("settings", "VALIDATION_INVALID_FIELD_TYPE", 'Field "settings" must be a list.')]
    errors: list[FieldError] = []
    seen_codes: set[str] = set()
    for index, row in enumerate(settings):
        error = _setting_row_error(index, row)
        if error:
            errors.append(error)
            continue
        code = _lower_keys(row)["code"]
        if code in seen_codes:
            errors.append(FieldError(f"settings[{index}].code", "DUPLICATE_SETTING_CODE",
                                     f'Setting code "{code}" is used twice.'))
        seen_codes.add(code)
    return errors


def _lower_keys(row: dict) -> dict:
    # Bitrix24 converts setting keys to upper snake case first, so "Name" and "name" collapse.
    return {str(key).lower(): value for key, value in row.items()}


def _setting_row_error(index: int, row) -> FieldError | None:
    where = f"settings[{index}]"
    values = _lower_keys(row) if isinstance(row, dict) else {}
    if any(values.get(key) in (None, "") for key in ("type", "name", "code")):
        return FieldError(where, "VALIDATION_SETTINGS_MISSING_REQUIRED_FIELDS",
                          'Settings must include "type", "name" and "code" fields.')
    for key in ("name", "code", "type"):
        if not isinstance(values[key], str) or not values[key].strip():
            return FieldError(f"{where}.{key}", "VALIDATION_INVALID_FIELD_TYPE",
                              f'Setting "{key}" must be a non-empty text.')
    if len(values["name"]) > SETTING_NAME_MAX:
        return FieldError(f"{where}.name", "VALIDATION_SETTINGS_NAME_TOO_LONG",
                          'Parameter "name" must be less than 512 characters.')
    if len(values["code"]) > SETTING_CODE_MAX:
        return FieldError(f"{where}.code", "VALIDATION_SETTINGS_CODE_TOO_LONG",
                          'Parameter "code" must be less than 512 characters.')
    if values["type"] not in SETTING_TYPES:
        return FieldError(f"{where}.type", "VALIDATION_SETTINGS_INVALID_TYPE", 'Parameter "type" is not correct.')
    return None


# --- sources ---------------------------------------------------------------------------------

def source_errors(fields: dict, declared_settings: list[dict] | None = None) -> list[FieldError]:
    """Every reason `biconnector.source.update` would refuse these fields.

    `declared_settings` is the connector's `settings` list; with it, setting codes must be
    declared (Bitrix24 would drop unknown ones silently) and INT settings must be integers.
    """
    errors = _generic_errors(fields, SOURCE_SCHEMA)
    if errors and errors[0].code == "VALIDATION_FIELDS_NOT_PROVIDED":
        return errors
    checked = _with_type_ok(fields, errors, SOURCE_SCHEMA)
    if "title" not in fields:
        errors.append(FieldError("title", "VALIDATION_REQUIRED_FIELD_MISSING",
                                 'Field "title" is required: Bitrix24 needs it on every source update.'))
    elif "title" in checked:
        errors.extend(filter(None, [_empty_error("title", checked["title"]),
                                    _length_error("title", checked["title"], TITLE_MAX)]))
    if "settings" in checked:
        errors.extend(source_settings_errors(checked["settings"], declared_settings))
    return errors


def source_settings_errors(settings, declared_settings: list[dict] | None = None) -> list[FieldError]:
    if not isinstance(settings, dict):
        return [FieldError("settings", "VALIDATION_INVALID_FIELD_TYPE",
                           'Field "settings" must be an object of setting code to value.')]
    declared = {str(row.get("code")): row.get("type") for row in declared_settings or [] if isinstance(row, dict)}
    errors: list[FieldError] = []
    for code, value in settings.items():
        where = f"settings.{code}"
        if declared_settings is not None and code not in declared:
            errors.append(FieldError(where, "UNKNOWN_SETTING_CODE",
                                     f'The connector declares no setting "{code}".'))
        elif declared.get(code) == "INT":
            if not is_integer(value):  # 5, "5" and 5.0 are whole numbers
                errors.append(FieldError(where, "INVALID_SETTING_VALUE", f'Setting "{code}" must be an integer.'))
        elif not _is_setting_value(value):
            errors.append(FieldError(where, "INVALID_SETTING_VALUE",
                                     f'Setting "{code}" must be a text value or a whole number.'))
    return errors


def _is_setting_value(value) -> bool:
    """Text, or a whole number (5 or 5.0), which is stored as its digits."""
    if isinstance(value, bool):
        return False
    return isinstance(value, (str, int)) or (isinstance(value, float) and value.is_integer())
