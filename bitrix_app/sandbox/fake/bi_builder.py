"""The portal as the Analytics hub and BI Builder: tables made from a REST source, and data queries.

    table_id = fake.bi.create_table(portal, source_id, "public.orders")
    answer = fake.bi.query(portal, table_id, ["ORDER_ID", "AMOUNT"], date_range=("2025-05-01", "2025-05-31"))

Follows the module (reference 6.6-6.11, ``ExternalSource/Source/Rest.php``): every call carries
``connection[<code>]`` with the source's stored values, goes through ``outbound.call_connector``
(recorded in ``state.outbound_calls``) and succeeds only with HTTP 200 and a non-falsy body.
Answers are checked as the module checks them, and a failure raises ``BiBuilderError`` with the
module's message key. Where the module only shows an empty preview, the driver raises as well,
so that a test sees why.

Tables live in ``portal.tables``: ``{id, sourceId, name, externalCode, externalName,
columns: [{name, externalCode, type, visible}]}``, ``name`` being the BI name.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from . import outbound, phpform

CANT_CONNECT = "BICONNECTOR_REST_CONNECTION_ERROR_CANT_CONNECT"
HTTP_ERROR = "BICONNECTOR_REST_CONNECTION_ERROR_404_ERROR"
EMPTY_TABLE_LIST = "BICONNECTOR_REST_EMPTY_TABLE_LIST_ERROR"
TABLE_DESCRIPTION_FAILED = "BICONNECTOR_REST_CONNECTION_TABLE_DESCRIPTION_404_ERROR"
EMPTY_TABLE_DESCRIPTION = "BICONNECTOR_REST_EMPTY_TABLE_DESCRIPTION_ERROR"
NOT_ACTIVE = "BICONNECTOR_REST_CONNECTION_NOT_ACTIVE"
INVALID_ANSWER = "INVALID_ANSWER"
INVALID_NAME = "INVALID_NAME"
NAME_TAKEN = "NAME_TAKEN"

FIELD_TYPES = ("int", "string", "double", "date", "datetime", "money", "timezone")
DATE_TYPES = ("date", "datetime")
TABLE_NAME, TABLE_NAME_MAX = re.compile(r"[a-z][a-z0-9_]*"), 230
COLUMN_NAME, COLUMN_NAME_MAX = re.compile(r"[A-Z][A-Z0-9_]*"), 32
BUILT_IN_TABLES = ("crm_activity", "crm_company", "crm_contact", "crm_deal", "crm_lead", "telephony_call")
PREVIEW_ROWS = 20

# Looker Studio's dimension filter operators -> CSQLWhere prefixes; EXCLUDE puts "!" in front.
FILTER_PREFIXES = {"EQUALS": "=", "IN_LIST": "=", "CONTAINS": "%", "IS_NULL": "=", "BETWEEN": "><",
                   "NUMERIC_GREATER_THAN": ">", "NUMERIC_GREATER_THAN_OR_EQUAL": ">=",
                   "NUMERIC_LESS_THAN": "<", "NUMERIC_LESS_THAN_OR_EQUAL": "<="}
DATE_TOKENS = re.compile(r"YYYY|MMMM|MM|MI|M|DD|HH|H|GG|G|SS|TT|T")


class BiBuilderError(Exception):
    """A failure as the hub or BI Builder reports it: the module's message key, plus a detail for tests."""

    def __init__(self, message_key: str, detail: str = "") -> None:
        super().__init__(f"{message_key}: {detail}" if detail else message_key)
        self.message_key = message_key
        self.detail = detail


@dataclass
class DataAnswer:
    """A data query's answer. The module forwards the body verbatim, so ``raw`` is what BI Builder gets."""

    header: list
    rows: list[list]
    raw: str
    form: dict[str, str]  # the flat form fields that were sent


class BiBuilder:
    def __init__(self, fake) -> None:
        self.fake = fake

    # --- the Analytics hub --------------------------------------------------------------------

    def table_list(self, portal, source_id: int, search: str = "") -> list[dict]:
        """urlTableList: ``[{externalCode, code, title}]``; the externalCode is ``id`` if given, else ``code``."""
        source = self._source(portal, source_id)
        # The module reports any failed call of this endpoint as 404_ERROR.
        body = self._call(source, "urlTableList", {"searchString": search}, "table_list", HTTP_ERROR)
        tables = _decode(body)
        if not isinstance(tables, list) or not all(_has_values(table, "code", "title") for table in tables):
            raise BiBuilderError(EMPTY_TABLE_LIST, f"not a list of objects with code and title: {body[:200]}")
        return [{"externalCode": phpform.to_string(table["code"] if table.get("id") is None else table["id"]),
                 "code": phpform.to_string(table["code"]), "title": phpform.to_string(table["title"])}
                for table in tables]

    def describe(self, portal, source_id: int, external_code: str) -> list[dict]:
        """urlTableDescription: ``[{code, name, type}]``, types lower-cased, unknown ones ``string``."""
        source = self._source(portal, source_id)
        body = self._call(source, "urlTableDescription", {"table": external_code}, "table_description",
                          TABLE_DESCRIPTION_FAILED)
        columns = _decode(body)
        if not isinstance(columns, list) or not columns or \
                not all(_has_values(column, "code", "name", "type") for column in columns):
            raise BiBuilderError(EMPTY_TABLE_DESCRIPTION,
                                 f"not a non-empty list of objects with code, name and type: {body[:200]}")
        return [{"code": phpform.to_string(column["code"]), "name": phpform.to_string(column["name"]),
                 "type": _field_type(column["type"])} for column in columns]

    def preview(self, portal, source_id: int, external_code: str, codes: list[str] | None = None) -> list[dict]:
        """urlData as the table viewer calls it: at most 20 rows keyed by column code.

        ``codes``: the columns shown; by default the stored table's, else the description's.
        Cached like the module does (an empty result after a failure too) for
        ``config.preview_cache_seconds``.
        """
        source = self._source(portal, source_id)
        if codes is None:
            table = _find_table(portal, source["id"], external_code)
            codes = ([column["externalCode"] for column in table["columns"]] if table and table["columns"]
                     else [column["code"] for column in self.describe(portal, source_id, external_code)])
        map_fields = _map_fields(portal, external_code)
        cache_key = (source["id"], external_code, PREVIEW_ROWS, ",".join(map_fields))  # the module keys on codes only
        cached = self._cached_preview(portal, cache_key)
        if cached is not None:
            return cached
        rows: list[dict] = []
        try:
            body = self._data(source, {"table": external_code, "limit": PREVIEW_ROWS, "mapFields": map_fields})
            rows = _keyed_rows(body, codes)
        finally:
            if self.fake.config.preview_cache_seconds > 0:
                with portal.state.lock:
                    portal.preview_cache[cache_key] = (self.fake.clock.now(), rows)
        return [dict(row) for row in rows]

    def create_table(self, portal, source_id: int, external_code: str, name: str | None = None, *,
                     columns: dict[str, str | None] | None = None, search: str = "") -> int:
        """The hub's table wizard: list, description, preview, then save under BI names.

        ``name`` defaults to the list entry's ``code``; every column's BI name is its code unless
        ``columns`` maps the code to another name, or to None to hide the column.
        """
        listed = self.table_list(portal, source_id, search)
        entry = next((table for table in listed if table["externalCode"] == external_code), None)
        if entry is None:
            raise BiBuilderError(INVALID_ANSWER, f"{external_code!r} is not in the table list")
        described = self.describe(portal, source_id, external_code)
        self.preview(portal, source_id, external_code, [column["code"] for column in described])
        stored = []
        for column in described:
            bi_name = (columns or {}).get(column["code"], column["code"])
            stored.append({"name": bi_name or column["code"], "externalCode": column["code"],
                           "type": column["type"], "visible": bi_name is not None})
        table_name = entry["code"] if name is None else name
        _check_name(table_name, TABLE_NAME, TABLE_NAME_MAX, "table")
        for column in stored:
            if column["visible"]:
                _check_name(column["name"], COLUMN_NAME, COLUMN_NAME_MAX, "column")
        with portal.state.lock:
            if table_name in BUILT_IN_TABLES or any(table["name"] == table_name for table in portal.tables.values()):
                raise BiBuilderError(NAME_TAKEN, f"a table named {table_name!r} already exists")
            table_id = portal.next_id("table")
            portal.tables[table_id] = {"id": table_id, "sourceId": int(source_id), "name": table_name,
                                       "externalCode": external_code, "externalName": entry["title"],
                                       "columns": stored}
        return table_id

    def rename_column(self, portal, table_id: int, external_code: str, new_name: str) -> None:
        with portal.state.lock:
            column = _column(portal, table_id, external_code)
            if column["visible"]:
                _check_name(new_name, COLUMN_NAME, COLUMN_NAME_MAX, "column")
            column["name"] = new_name

    def hide_column(self, portal, table_id: int, external_code: str) -> None:
        with portal.state.lock:
            _column(portal, table_id, external_code)["visible"] = False

    # --- BI Builder -----------------------------------------------------------------------------

    def query(self, portal, table_id: int, columns: list[str] | None = None, *,
              date_range: tuple[str | None, str | None] | None = None,
              dimension_filters: list[list[dict]] | None = None, limit: int = 0,
              time_filter_column: str | None = None) -> DataAnswer:
        """A report's data query: urlData with ``select``, ``limit``, ``mapFields`` reduced to the
        selected names, and ``filter`` (reference 6.9).

        ``columns``: BI names, default every visible column; ``date_range``: ``("YYYY-MM-DD",
        "YYYY-MM-DD")``; ``dimension_filters``: groups of ``{fieldName, values, type, operator}``.
        """
        with portal.state.lock:
            table = portal.tables[table_id]
            visible = [dict(column) for column in table["columns"] if column["visible"]]
            external_code, source_id = table["externalCode"], table["sourceId"]
        select = [column["name"] for column in visible] if columns is None else list(columns)
        unknown = set(select) - {column["name"] for column in visible}
        if unknown:
            raise ValueError(f"not visible columns of table {table_id}: {sorted(unknown)}")
        source = self._source(portal, source_id)
        groups = [group for group in (_filter_group(portal, visible, filters) for filters in dimension_filters or [])
                  if group]
        fields = {
            "table": external_code,
            "select": select,
            "filter": {**_date_filter(portal, self.fake.config, visible, date_range, time_filter_column),
                       **{str(index): group for index, group in enumerate(groups)}},
            "limit": int(limit),
            "mapFields": {code: name for code, name in _map_fields(portal, external_code).items() if name in select},
        }
        body = self._data(source, fields)
        header, rows = _table_answer(body)
        sent = outbound.build_query({**fields, "connection": source["connection"]})
        return DataAnswer(header, rows, body, dict(sent))

    # --- calls ----------------------------------------------------------------------------------

    def _source(self, portal, source_id: int) -> dict:
        """What a call needs of a source: its state, stored settings and the connector's URLs."""
        with portal.state.lock:
            source = portal.sources[int(source_id)]
            connector = portal.connectors[source["connectorId"]]
            return {"id": source["id"], "active": source["active"],
                    "connection": {setting["code"]: setting["value"] for setting in source["settings"]},
                    **{key: connector[key] for key in ("urlTableList", "urlTableDescription", "urlData")}}

    def _data(self, source: dict, fields: dict) -> str:
        if not source["active"]:
            raise BiBuilderError(NOT_ACTIVE, f"source {source['id']} is not active")
        return self._call(source, "urlData", fields, "data")

    def _call(self, source: dict, endpoint: str, fields: dict, kind: str, failure_key: str | None = None) -> str:
        """POST ``fields`` and ``connection`` to an endpoint; its body, or BiBuilderError.

        ``failure_key`` is what the module reports instead of the transport key at this call site.
        """
        data = {**fields, "connection": source["connection"]}
        response, error = outbound.call_connector(self.fake, source[endpoint], data, kind, self.fake.config.bi_timeout)
        if response is None or response.text in ("", "0"):
            key, reason = CANT_CONNECT, error or f"HTTP {response.status_code} with an empty body"
        elif response.status_code != 200:
            key, reason = HTTP_ERROR, f"HTTP {response.status_code}"
        else:
            return response.text
        raise BiBuilderError(failure_key or key, reason if failure_key is None else f"{key}: {reason}")

    def _cached_preview(self, portal, cache_key: tuple) -> list[dict] | None:
        ttl = self.fake.config.preview_cache_seconds
        with portal.state.lock:
            hit = portal.preview_cache.get(cache_key)
        if ttl <= 0 or hit is None or self.fake.clock.now() - hit[0] >= ttl:
            return None
        return [dict(row) for row in hit[1]]


# --- tables ---------------------------------------------------------------------------------------

def _find_table(portal, source_id: int, external_code: str) -> dict | None:
    with portal.state.lock:
        return next((table for table in portal.tables.values()
                     if table["sourceId"] == source_id and table.get("externalCode") == external_code), None)


def _column(portal, table_id: int, external_code: str) -> dict:
    for column in portal.tables[table_id]["columns"]:
        if column["externalCode"] == external_code:
            return column
    raise KeyError(external_code)


def _map_fields(portal, external_code: str) -> dict[str, str]:
    """Code -> BI name of every column (hidden ones too) of every table on the portal with this
    externalCode, whatever its source: the module merges them, the last one winning."""
    with portal.state.lock:
        return {column["externalCode"]: column["name"] for table in portal.tables.values()
                if table.get("externalCode") == external_code for column in table.get("columns", [])}


def _check_name(name, pattern: re.Pattern, limit: int, what: str) -> None:
    if not isinstance(name, str) or not pattern.fullmatch(name) or len(name) > limit:
        raise BiBuilderError(INVALID_NAME, f"{what} name {name!r} must match ^{pattern.pattern}$ "
                                           f"and have at most {limit} characters")


# --- answers --------------------------------------------------------------------------------------

def _decode(body: str):
    def no_constants(name):  # PHP's decoder knows no NaN or Infinity
        raise ValueError(name)

    try:
        return json.loads(body, parse_constant=no_constants)
    except ValueError:
        return None


def _has_values(item, *keys: str) -> bool:
    return isinstance(item, dict) and not any(phpform.is_empty(item.get(key)) for key in keys)


def _field_type(value) -> str:
    name = phpform.to_string(value).lower()
    return name if name in FIELD_TYPES else "string"


def _table_answer(body: str) -> tuple[list, list[list]]:
    """urlData's shape: a list of lists, the header first, every row as wide as the header."""
    answer = _decode(body)
    if not isinstance(answer, list) or not answer or not all(isinstance(row, list) for row in answer):
        raise BiBuilderError(INVALID_ANSWER, f"not a list of lists with a header row: {body[:200]}")
    header, rows = answer[0], answer[1:]
    for number, row in enumerate(rows, 1):
        if len(row) != len(header):
            raise BiBuilderError(INVALID_ANSWER, f"row {number} has {len(row)} cells, the header {len(header)}")
    return header, rows


def _keyed_rows(body: str, codes: list[str]) -> list[dict]:
    """The preview combines the header with each row and reads the cells by column code."""
    header, rows = _table_answer(body)
    header = [phpform.to_string(cell) for cell in header]
    missing = [code for code in codes if code not in header]
    if missing:
        raise BiBuilderError(INVALID_ANSWER, f"the header {header} lacks the column codes {missing}")
    return [{code: dict(zip(header, row))[code] for code in codes} for row in rows[:PREVIEW_ROWS]]


# --- filters --------------------------------------------------------------------------------------

def _date_filter(portal, config, columns: list[dict], date_range, time_filter_column: str | None) -> dict:
    """``>=COL`` the start at 00:00:00 and ``<=COL`` the end at 23:59:59, in the portal's FORMAT_DATETIME,
    on the time filter column if it is a date column, else on the first one."""
    dated = [column["name"] for column in columns if column["type"] in DATE_TYPES]
    if not date_range or not dated:
        return {}
    name = time_filter_column if time_filter_column in dated else dated[0]
    start, end = date_range
    filter_ = {}
    if start:
        start_format = portal.date_format if config.short_range_start else portal.datetime_format
        filter_[">=" + name] = format_date(datetime.strptime(start, "%Y-%m-%d"), start_format)
    if end:
        last_second = datetime.strptime(end, "%Y-%m-%d") + timedelta(hours=23, minutes=59, seconds=59)
        filter_["<=" + name] = format_date(last_second, portal.datetime_format)
    return filter_


def _filter_group(portal, columns: list[dict], filters: list[dict]) -> dict:
    """One group of dimension filters: ``{LOGIC: OR, 0: {key: value}, ...}``, empty when nothing is left."""
    by_name = {column["name"]: column for column in columns}
    entries = []
    for item in filters:
        column, prefix = by_name.get(item.get("fieldName")), FILTER_PREFIXES.get(item.get("operator"))
        if column is None or prefix is None:  # hidden or unknown columns, REGEXP_* and unknown operators
            continue
        negate = "!" if item.get("type") == "EXCLUDE" else ""
        value = False if item["operator"] == "IS_NULL" else _filter_values(portal, column["type"], item.get("values"))
        entries.append({negate + prefix + column["name"]: value})
    return {"LOGIC": "OR", **{str(index): entry for index, entry in enumerate(entries)}} if entries else {}


def _filter_values(portal, column_type: str, values):
    """Dates re-formatted as the module does: datetime columns FULL, date columns SHORT."""
    if column_type not in DATE_TYPES:
        return values
    pattern = portal.datetime_format if column_type == "datetime" else portal.date_format
    if isinstance(values, list):
        return [_reformat_date(value, pattern) for value in values]
    return _reformat_date(values, pattern)


def _reformat_date(value, pattern: str):
    for parse in (datetime.fromisoformat, lambda text: datetime.strptime(text, "%Y%m%d"),
                  lambda text: datetime.strptime(text, "%Y%m%d%H%M%S")):
        try:
            return format_date(parse(str(value)), pattern)
        except ValueError:
            continue
    return value  # PHP's strtotime would fail too; the value goes out unchanged


def format_date(moment: datetime, pattern: str) -> str:
    """A Bitrix date format such as ``DD.MM.YYYY HH:MI:SS`` or ``MM/DD/YYYY H:MI:SS T``."""
    hour12 = moment.hour % 12 or 12
    values = {"YYYY": f"{moment.year:04d}", "MMMM": moment.strftime("%B"), "MM": f"{moment.month:02d}",
              "MI": f"{moment.minute:02d}", "M": moment.strftime("%b"), "DD": f"{moment.day:02d}",
              "HH": f"{moment.hour:02d}", "H": f"{hour12:02d}", "GG": str(moment.hour), "G": str(hour12),
              "SS": f"{moment.second:02d}", "TT": "AM" if moment.hour < 12 else "PM",
              "T": "am" if moment.hour < 12 else "pm"}
    return DATE_TOKENS.sub(lambda match: values[match.group()], pattern)
