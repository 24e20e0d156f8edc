"""biconnector.connector.* and biconnector.source.*, following the module code (reference 5.1-5.6).

The quirks that matter to a client:
- every error is a *success* whose result is ``{"error": {"error": CODE, "error_description": MSG}}``
  (HTTP 200, first error only); only a bad order direction is a top-level 400;
- objects belong to the app (client_id) that created them; others get ``*_NOT_FOUND``;
- ``source.add``/``source.update`` call the connector's ``urlCheck`` before saving, and
  ``source.update`` checks ``title`` only after that call, with a code-less error;
- ``connector.update`` replaces ``settings`` wholesale, ``source.update`` merges them by code.
"""
from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass

from . import outbound, phpform
from .web import RestError

PAGE_SIZE = 50
FILTER_PREFIX_CHARS = "<>=!@%"
FILTER_OPERATORS = ("!@", ">=", "<=", "=%", "%=", "!=", "!%", ">", "<", "@", "%", "=", "!")
PHP_TRIM = " \t\n\r\0\x0b"


@dataclass(frozen=True)
class Field:
    title: str
    type: str
    required: bool = False
    read_only: bool = False
    immutable: bool = False
    multiple: bool = False

    def describe(self) -> dict:
        return {"title": self.title, "type": self.type, "isRequired": self.required,
                "isReadOnly": self.read_only, "isImmutable": self.immutable, "isMultiple": self.multiple}


CONNECTOR_FIELDS = (
    Field("id", "integer", required=True, read_only=True),
    Field("title", "string", required=True),
    Field("logo", "string", required=True),
    Field("description", "string"),
    Field("sort", "integer"),
    Field("urlCheck", "string", required=True),
    Field("urlData", "string", required=True),
    Field("urlTableList", "string", required=True),
    Field("urlTableDescription", "string", required=True),
    Field("settings", "array", required=True, multiple=True),
    Field("dateCreate", "datetime", required=True, read_only=True),
    Field("supportMapping", "boolean"),
    Field("sourceCode", "string"),
)

SOURCE_FIELDS = (
    Field("id", "integer", required=True, read_only=True),
    Field("title", "string", required=True),
    Field("type", "string", required=True, read_only=True),
    Field("code", "string", required=True, read_only=True),
    Field("description", "string"),
    Field("active", "boolean"),
    Field("dateCreate", "datetime", required=True, read_only=True),
    Field("dateUpdate", "datetime", required=True, read_only=True),
    Field("createdById", "integer", required=True, read_only=True),
    Field("updatedById", "integer", required=True, read_only=True),
    Field("connectorId", "integer", required=True, immutable=True),
    Field("settings", "array", required=True, multiple=True),
)

# Key order of connector.get items and of connector.list items (the list uses ALLOWED_SELECT).
CONNECTOR_GET_KEYS = ("id", "title", "dateCreate", "logo", "description", "sort", "urlCheck", "settings",
                      "urlData", "urlTableList", "urlTableDescription", "supportMapping", "sourceCode")
CONNECTOR_LIST_KEYS = ("id", "title", "description", "dateCreate", "logo", "urlCheck", "urlTableList",
                       "urlTableDescription", "urlData", "settings", "sort", "supportMapping", "sourceCode")
SOURCE_CONNECTION_KEYS = ("id", "type", "code", "title", "description", "active", "dateCreate",
                          "dateUpdate", "createdById", "updatedById")
SOURCE_LIST_KEYS = ("id", "title", "type", "code", "description", "active", "dateCreate", "dateUpdate",
                    "createdById", "updatedById", "connectorId", "settings")

# Storage limits (ORM). Their error texts are localized upstream and not confirmed.
CONNECTOR_MAX_LENGTHS = {"title": 512, "urlCheck": 2048, "urlData": 2048, "urlTableList": 2048,
                         "urlTableDescription": 2048, "sourceCode": 64}


class BiError(Exception):
    """An error the module returns inside ``result``; ``code`` is 0 for code-less errors."""

    def __init__(self, code: str | int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def result(self) -> dict:
        return {"error": {"error": self.code, "error_description": self.message}}


def connector_fields(config) -> tuple[Field, ...]:
    """The connector schema of this portal version (supportMapping/sourceCode may be unknown)."""
    hidden = {name for name, known in (("supportMapping", config.support_mapping),
                                       ("sourceCode", config.source_code)) if not known}
    return tuple(field for field in CONNECTOR_FIELDS if field.title not in hidden)


def biconnector_method(function):
    """Rights check first, then the method; a ``BiError`` becomes a nested error result."""

    @functools.wraps(function)
    def handler(call):
        try:
            if not call.user.bi_access:
                raise BiError("ACCESS_DENIED", "Access denied.")
            # The app-context check always passes: the fake has no webhooks, only app tokens.
            return function(call)
        except BiError as error:
            return error.result()

    return handler


# --- generic validation (Base.php) ----------------------------------------------------------

def validate_id(params: dict) -> int:
    if "id" not in params:
        raise BiError("VALIDATION_ID_NOT_PROVIDED", "ID is missing.")
    value = params["id"]
    if not phpform.is_numeric(value) or phpform.to_int(value) <= 0:
        raise BiError("VALIDATION_INVALID_ID_FORMAT", "ID has to be a positive integer.")
    return phpform.to_int(value)


def validate_fields(fields, schema: tuple[Field, ...], strict: bool) -> dict:
    """``strict`` is add (required fields checked), otherwise update (immutable fields refused)."""
    if not phpform.is_array(fields) or len(fields) == 0:
        raise BiError("VALIDATION_FIELDS_NOT_PROVIDED", "Fields not provided.")
    values = dict(phpform.items(fields))
    titles = [field.title for field in schema]
    unknown = [key for key in values if key not in titles]
    if unknown:
        raise BiError("VALIDATION_UNKNOWN_PARAMETERS", "Unknown parameters: " + ", ".join(unknown))
    for field in schema:
        if field.title not in values:
            if strict and field.required and not field.read_only:
                raise BiError("VALIDATION_REQUIRED_FIELD_MISSING", f'Field "{field.title}" is required.')
            continue
        if field.read_only:
            raise BiError("VALIDATION_READ_ONLY_FIELD", f'Field "{field.title}" is read only.')
        if not strict and field.immutable:
            raise BiError("VALIDATION_IMMUTABLE_FIELD", f'Field "{field.title}" is immutable.')
        if not _has_type(values[field.title], field.type):
            raise BiError("VALIDATION_INVALID_FIELD_TYPE", f'Field "{field.title}" must be of type {field.type}.')
    return values


def _has_type(value, type_name: str) -> bool:
    checks = {
        "integer": phpform.is_numeric,
        "string": lambda item: isinstance(item, str),
        "array": phpform.is_array,
        "boolean": lambda item: isinstance(item, bool),  # strict: a form-encoded "1" fails
    }
    return checks.get(type_name, lambda item: True)(value)


def _check_max_lengths(values: dict, limits: dict[str, int]) -> None:
    for name, limit in limits.items():
        value = values.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise BiError("BX_INVALID_VALUE", f'The field "{name}" must not be longer than {limit} characters.')


def _upper_snake(key: str) -> str:
    """Bitrix's Converter (camel2snake, then upper): ``name``/``Name`` -> NAME, ``NAME`` -> N_AM_E."""
    return re.sub(r"(.)([A-Z])", r"\1_\2", key).lower().upper()


# --- connectors -----------------------------------------------------------------------------

def check_connector_settings(settings) -> list[dict]:
    """The four settings checks, element by element; returns the list to store."""
    declared = []
    for _, element in phpform.items(settings):
        keys = {_upper_snake(key): value for key, value in phpform.items(element)} if phpform.is_array(element) else {}
        if any(keys.get(name) is None for name in ("TYPE", "NAME", "CODE")):
            raise BiError("VALIDATION_SETTINGS_MISSING_REQUIRED_FIELDS",
                          'Settings must include "type", "name" and "code" fields.')
        name, code = phpform.to_string(keys["NAME"]), phpform.to_string(keys["CODE"])
        if len(name) > 512:
            raise BiError("VALIDATION_SETTINGS_NAME_TOO_LONG", 'Parameter "name" must be less than 512 characters.')
        if len(code) > 512:
            raise BiError("VALIDATION_SETTINGS_CODE_TOO_LONG", 'Parameter "code" must be less than 512 characters.')
        if keys["TYPE"] not in ("STRING", "INT"):
            raise BiError("VALIDATION_SETTINGS_INVALID_TYPE", 'Parameter "type" is not correct.')
        declared.append({"name": name, "code": code, "type": keys["TYPE"]})
    return declared


def _connector_values(fields: dict) -> dict:
    """Passed connector fields converted to what the table stores."""
    values = {}
    for name, value in fields.items():
        if name == "sort":
            values[name] = phpform.to_int(value)
        elif name == "settings":
            values[name] = check_connector_settings(value)
        else:
            values[name] = value
    return values


def new_connector(portal, client_id: str, values: dict, now: str) -> dict:
    """Store a connector; used by connector.add and by FakeBitrix24.seed_connector."""
    connector = {"id": portal.next_id("connector"), "title": "", "dateCreate": now, "logo": "",
                 "description": None, "sort": 100, "urlCheck": "", "settings": [], "urlData": "",
                 "urlTableList": "", "urlTableDescription": "", "supportMapping": False, "sourceCode": None,
                 "appId": client_id}
    connector.update(values)
    portal.connectors[connector["id"]] = connector
    return connector


def _owned_connector(call, connector_id: int) -> dict:
    connector = call.portal.connectors.get(connector_id)
    if connector is None or connector["appId"] != call.client_id:
        raise BiError("CONNECTOR_NOT_FOUND", "Connector was not found.")
    return connector


def _connector_item(call, connector: dict, keys: tuple[str, ...]) -> dict:
    visible = {field.title for field in connector_fields(call.config)}
    return {key: connector[key] for key in keys if key in visible}


@biconnector_method
def connector_add(call) -> dict:
    fields = validate_fields(call.params.get("fields"), connector_fields(call.config), strict=True)
    values = _connector_values(fields)
    _check_max_lengths(values, CONNECTOR_MAX_LENGTHS)
    with call.state.lock:
        connector = new_connector(call.portal, call.client_id, values, call.state.clock.bitrix_datetime())
    return {"id": connector["id"]}


@biconnector_method
def connector_update(call) -> bool:
    connector_id = validate_id(call.params)
    fields = validate_fields(call.params.get("fields"), connector_fields(call.config), strict=False)
    with call.state.lock:
        connector = _owned_connector(call, connector_id)
        values = _connector_values(fields)  # settings, if passed, replace the stored list wholesale
        _check_max_lengths(values, CONNECTOR_MAX_LENGTHS)
        connector.update(values)
    return True


@biconnector_method
def connector_get(call) -> dict:
    connector_id = validate_id(call.params)
    with call.state.lock:
        return {"item": _connector_item(call, _owned_connector(call, connector_id), CONNECTOR_GET_KEYS)}


@biconnector_method
def connector_list(call) -> list:
    titles = [field.title for field in connector_fields(call.config)]
    validate_list_params(call.params, titles)
    with call.state.lock:
        rows = [_connector_item(call, connector, CONNECTOR_LIST_KEYS)
                for connector in call.portal.connectors.values() if connector["appId"] == call.client_id]
    rows = list_page(rows, call.params, ignored=())
    return [_select(row, call.params.get("select"), always=("id",)) for row in rows]


@biconnector_method
def connector_delete(call) -> bool:
    connector_id = validate_id(call.params)
    with call.state.lock:
        _owned_connector(call, connector_id)
        if any(source["connectorId"] == connector_id for source in call.portal.sources.values()):
            raise BiError("CONNECTOR_DELETE_RESTRICTED",
                          "Connector cannot be removed. Remove the connections related to the connector first.")
        del call.portal.connectors[connector_id]
    return True


@biconnector_method
def connector_fields_method(call) -> dict:
    return {"fields": [field.describe() for field in connector_fields(call.config)]}


# --- sources --------------------------------------------------------------------------------

def _owned_source(call, source_id: int) -> dict:
    source = call.portal.sources.get(source_id)
    connector = call.portal.connectors.get(source["connectorId"]) if source else None
    if source is None or source["type"] != "rest" or connector is None or connector["appId"] != call.client_id:
        raise BiError("SOURCE_NOT_FOUND", "Source was not found.")
    return source


def _settings_data(fields: dict) -> dict:
    """Values to store: ``settings``, or (module quirk) the top-level fields when it is empty."""
    settings = fields.get("settings")
    chosen = settings if phpform.is_array(settings) and settings else fields
    return dict(phpform.items(chosen))


def merge_settings(portal, stored: list[dict], declared: list[dict], data: dict) -> list[dict]:
    """Drop codes the connector no longer declares, then update/add the declared codes passed."""
    codes = [item["code"] for item in declared]
    merged = [setting for setting in stored if setting["code"] in codes]
    by_code = {setting["code"]: setting for setting in merged}
    for item in declared:
        value = data.get(item["code"])
        if value is None:
            continue
        value = phpform.to_string(value).strip(PHP_TRIM)
        if item["code"] in by_code:
            by_code[item["code"]]["value"] = value
        else:
            merged.append({"id": portal.next_id("setting"), "code": item["code"], "name": item["name"],
                           "type": item["type"], "value": value})
    return merged


def new_source(portal, connector: dict, title: str, description, settings: dict, user_id: int, now: str) -> dict:
    """Store a source; used by source.add and by FakeBitrix24.seed_source."""
    source = {"id": portal.next_id("source"), "type": "rest", "code": f"rest_{connector['id']}",
              "title": title, "description": description, "active": True, "dateCreate": now,
              "dateUpdate": now, "createdById": user_id, "updatedById": user_id,
              "connectorId": connector["id"], "settings": []}
    source["settings"] = merge_settings(portal, [], connector["settings"], settings)
    portal.sources[source["id"]] = source
    return source


def _require_title(fields: dict) -> None:
    if phpform.is_empty(fields.get("title")):
        raise BiError(0, "All the fields are required.")  # no string code: the Error default
    _check_max_lengths(fields, {"title": 512})


@biconnector_method
def source_add(call) -> dict:
    fields = validate_fields(call.params.get("fields"), SOURCE_FIELDS, strict=True)
    connector_id = phpform.to_int(fields["connectorId"])
    with call.state.lock:
        url_check = _owned_connector(call, connector_id)["urlCheck"]
    passed = dict(phpform.items(fields["settings"]))
    if not outbound.check_connection(call.fake, url_check, passed):
        raise BiError("SOURCE_CREATE_CONNECTION_ERROR", "Cannot create connection.")
    _require_title(fields)
    with call.state.lock:
        connector = _owned_connector(call, connector_id)
        source = new_source(call.portal, connector, fields["title"], fields.get("description"),
                            _settings_data(fields), call.user.id, call.state.clock.bitrix_datetime())
    return {"id": source["id"]}


@biconnector_method
def source_update(call) -> bool:
    source_id = validate_id(call.params)
    fields = validate_fields(call.params.get("fields"), SOURCE_FIELDS, strict=False)
    with call.state.lock:
        source = _owned_source(call, source_id)
        url_check = call.portal.connectors[source["connectorId"]]["urlCheck"]
        # The check sees the stored values with the passed ones on top, declared or not.
        payload = {setting["code"]: setting["value"] for setting in source["settings"]}
        passed = fields.get("settings")
        payload.update(phpform.items(passed) if phpform.is_array(passed) else {})
    if not outbound.check_connection(call.fake, url_check, payload):
        raise BiError("SOURCE_UPDATE_CONNECTION_ERROR", "Cannot update connection.")
    _require_title(fields)  # only now: a call without title has already hit urlCheck
    with call.state.lock:
        source = _owned_source(call, source_id)
        declared = call.portal.connectors[source["connectorId"]]["settings"]
        source["title"] = fields["title"]
        if fields.get("description") is not None:
            source["description"] = fields["description"]
        source["dateUpdate"] = call.state.clock.bitrix_datetime()
        source["updatedById"] = call.user.id
        source["settings"] = merge_settings(call.portal, source["settings"], declared, _settings_data(fields))
    return True


@biconnector_method
def source_get(call) -> dict:
    source_id = validate_id(call.params)
    with call.state.lock:
        source = _owned_source(call, source_id)
        return {"item": {
            "connection": {key: source[key] for key in SOURCE_CONNECTION_KEYS},
            "connectorId": source["connectorId"],
            "settings": [{"code": item["code"], "name": item["name"], "type": item["type"],
                          "value": item["value"], "id": item["id"]} for item in source["settings"]],
        }}


@biconnector_method
def source_list(call) -> list:
    validate_list_params(call.params, [field.title for field in SOURCE_FIELDS])
    with call.state.lock:
        owned = {connector_id for connector_id, connector in call.portal.connectors.items()
                 if connector["appId"] == call.client_id}
        sources = [source for source in call.portal.sources.values()
                   if source["type"] == "rest" and source["connectorId"] in owned]
        # Filter and order see the stored fields (settings are ignored there); only the page's rows
        # are built, so reading thousands of sources page by page stays cheap.
        rows = [_source_row(source) for source in list_page(sources, call.params, ignored=("settings",))]
    select = call.params.get("select")
    only_settings = phpform.is_array(select) and [value for _, value in phpform.items(select)] == ["settings"]
    return [_select(row, select, always=() if only_settings else ("id",)) for row in rows]


def _source_row(source: dict) -> dict:
    row = {key: source[key] for key in SOURCE_LIST_KEYS if key != "settings"}
    row["settings"] = [{"code": item["code"], "name": item["name"], "type": item["type"], "value": item["value"]}
                       for item in source["settings"]]
    return row


@biconnector_method
def source_delete(call) -> bool:
    source_id = validate_id(call.params)
    with call.state.lock:
        _owned_source(call, source_id)
        if any(table["sourceId"] == source_id for table in call.portal.tables.values()):
            raise BiError("BX_ERROR", "Cannot delete source. Delete all related datasets first.")
        del call.portal.sources[source_id]
    return True


@biconnector_method
def source_fields_method(call) -> dict:
    return {"fields": [field.describe() for field in SOURCE_FIELDS]}


# --- list methods: select, filter, order, page ----------------------------------------------

def validate_list_params(params: dict, titles: list[str]) -> None:
    select = params.get("select")
    if select is not None:
        if not phpform.is_array(select):
            raise BiError("VALIDATION_SELECT_TYPE", 'Parameter "select" must be array.')
        for _, entry in phpform.items(select):
            if not isinstance(entry, str) or entry not in [*titles, "*"]:
                raise BiError("VALIDATION_FIELD_NOT_ALLOWED_IN_SELECT",
                              f'Field "{phpform.to_string(entry)}" is not allowed in the "select".')
    filter_ = params.get("filter")
    if filter_ is not None:
        if not phpform.is_array(filter_):
            raise BiError("VALIDATION_FILTER_TYPE", 'Parameter "filter" must be array.')
        _validate_filter(filter_, titles)
    order = params.get("order")
    if order is not None:
        if not phpform.is_array(order):
            raise BiError("VALIDATION_ORDER_TYPE", 'Parameter "order" must be array.')
        for key, _ in phpform.items(order):
            if key not in titles:
                raise BiError("VALIDATION_FIELD_NOT_ALLOWED_IN_ORDER", f'Field "{key}" is not allowed in the "order".')


def _validate_filter(filter_, titles: list[str]) -> None:
    for key, value in phpform.items(filter_):
        if key == "logic":
            if phpform.to_string(value).upper() not in ("AND", "OR"):
                raise BiError("VALIDATION_INVALID_FILTER_LOGIC", 'Field "logic" must be either "AND" or "OR".')
            continue
        if phpform.is_array(value):
            _validate_filter(value, titles)  # so an IN list of non-numeric strings fails (as upstream)
            continue
        name = key.lstrip(FILTER_PREFIX_CHARS)
        if not (phpform.is_numeric(value) and phpform.is_numeric(name)) and name not in titles:
            raise BiError("VALIDATION_FIELD_NOT_ALLOWED_IN_FILTER", f'Field "{name}" is not allowed in the "filter".')


def list_page(rows: list[dict], params: dict, ignored: tuple[str, ...]) -> list[dict]:
    """Filter, order (a bad direction is a top-level 400), then cut the 50-row page."""
    filter_ = params.get("filter")
    if phpform.is_array(filter_):
        rows = [row for row in rows if _matches(row, filter_, ignored)]
    rows = _ordered(rows, params.get("order"), ignored)
    page = params.get("page")
    number = phpform.to_int(page) if phpform.is_numeric(page) else 1
    offset = (number - 1) * PAGE_SIZE if number > 1 else 0
    return rows[offset:offset + PAGE_SIZE]


def _ordered(rows: list[dict], order, ignored: tuple[str, ...]) -> list[dict]:
    """Without `order` the module issues no ORDER BY, so the database may return any order, a
    different one per page: shuffled here, so a client that pages without an order is caught."""
    rows = sorted(rows, key=lambda row: row["id"])
    if not phpform.is_array(order) or not order:
        random.shuffle(rows)
        return rows
    keys = []
    for name, direction in phpform.items(order):
        text = "ARRAY" if phpform.is_array(direction) else phpform.to_string(direction).upper()
        if text not in ("ASC", "DESC"):
            raise RestError("ERROR_ARGUMENT", f'Invalid order "{text}"', 400)
        if name not in ignored:
            keys.append((name, text == "DESC"))
    for name, descending in reversed(keys):
        rows.sort(key=lambda row: _sort_key(row.get(name)), reverse=descending)
    return rows


def _sort_key(value):
    if value is None:
        return (0, 0, "")
    if isinstance(value, (bool, int, float)):
        return (1, float(value), "")
    return (2, 0, str(value).casefold())


def _matches(row: dict, filter_, ignored: tuple[str, ...]) -> bool:
    logic, results = "AND", []
    for key, value in phpform.items(filter_):
        if key == "logic":
            logic = phpform.to_string(value).upper()
            continue
        if key.isdigit() and phpform.is_array(value):
            results.append(_matches(row, value, ignored))  # nested group
            continue
        operator, name = _split_operator(key)
        if name in ignored or name not in row or (phpform.is_array(value) and not value):
            continue
        results.append(_compare(row[name], operator, value))
    if not results:
        return True
    return all(results) if logic == "AND" else any(results)


def _split_operator(key: str) -> tuple[str, str]:
    for operator in FILTER_OPERATORS:
        if key.startswith(operator):
            return operator, key[len(operator):]
    return "=", key


def _compare(actual, operator: str, expected) -> bool:
    negate = operator.startswith("!")
    if phpform.is_array(expected):
        hit = any(_equal(actual, value) for _, value in phpform.items(expected))
        return not hit if negate else hit
    if operator in ("=", "!", "!="):
        return _equal(actual, expected) != negate
    if operator in ("%", "!%"):
        hit = phpform.to_string(expected).casefold() in phpform.to_string(actual).casefold()
        return hit != negate
    if operator in ("=%", "%="):
        return _like(actual, expected)
    return _compare_order(actual, operator, expected)


def _equal(actual, expected) -> bool:
    if isinstance(actual, bool):
        return actual == (phpform.to_string(expected).upper() in ("Y", "1", "TRUE"))
    if isinstance(actual, (int, float)) and phpform.is_numeric(expected):
        return float(actual) == float(expected)
    return phpform.to_string(actual).casefold() == phpform.to_string(expected).casefold()


def _like(actual, pattern) -> bool:
    regex = "".join(".*" if char == "%" else "." if char == "_" else re.escape(char)
                    for char in phpform.to_string(pattern))
    return re.fullmatch(regex, phpform.to_string(actual), re.IGNORECASE | re.DOTALL) is not None


def _compare_order(actual, operator: str, expected) -> bool:
    if phpform.is_numeric(actual) and phpform.is_numeric(expected):
        left, right = float(actual), float(expected)
    else:
        left, right = phpform.to_string(actual), phpform.to_string(expected)
    return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[operator]


def _select(row: dict, select, always: tuple[str, ...]) -> dict:
    wanted = [value for _, value in phpform.items(select)] if phpform.is_array(select) else []
    if not wanted or "*" in wanted:
        return row
    return {key: value for key, value in row.items() if key in wanted or key in always}


METHODS = {
    "biconnector.connector.add": (connector_add, "biconnector"),
    "biconnector.connector.update": (connector_update, "biconnector"),
    "biconnector.connector.get": (connector_get, "biconnector"),
    "biconnector.connector.list": (connector_list, "biconnector"),
    "biconnector.connector.delete": (connector_delete, "biconnector"),
    "biconnector.connector.fields": (connector_fields_method, "biconnector"),
    "biconnector.source.add": (source_add, "biconnector"),
    "biconnector.source.update": (source_update, "biconnector"),
    "biconnector.source.get": (source_get, "biconnector"),
    "biconnector.source.list": (source_list, "biconnector"),
    "biconnector.source.delete": (source_delete, "biconnector"),
    "biconnector.source.fields": (source_fields_method, "biconnector"),
}
