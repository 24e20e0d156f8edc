"""Turn a Bitrix24 `urlData` filter into a SQLAlchemy Core WHERE clause (reference 6.9).

The filter is a Bitrix `CSQLWhere` array, already decoded by `services.php_form.decode` into
nested dicts with string keys and string leaves (PHP lists arrive as dicts keyed "0", "1", ...;
real Python lists are accepted too). Numeric keys hold sub-filters, `LOGIC` joins the entries of
one level (AND, OR, or NOT = negated AND), and every other key is an operator prefix followed
by a column name, e.g. `>=DATE_CREATE`.

Semantics, where CSQLWhere or the reference leave a choice:

* String comparisons ignore case on every database (`lower()` on both sides, ILIKE on
  PostgreSQL), as Bitrix's own MySQL collations do. SQLite folds ASCII letters only.
* A key without an operator is a LIKE pattern for string columns and equality for others;
  `!` is its negation. With a list value both mean IN / NOT IN.
* LIKE patterns (no operator, `!`, `=%`, `%=`, `!=%`, `!%=`): `%` and `_` are wildcards and
  a backslash makes the next character literal. `%` / `!%` search for the text as given.
* Negations on string columns also match NULL; on other columns they follow SQL and do not.
* The scalar "0" with `=`, `==`, `!=`, `!==` is the IS NULL encoding (PHP `false`); on number
  columns `= "0"` is `IS NULL OR = 0`, as in CSQLWhere. `@` and `!@` never read it that way.
* Pattern operators on number and date columns compare for equality, as CSQLWhere does.

Anything that cannot be translated raises FilterError; nothing is ever silently dropped,
except list values that are empty (Bitrix never sends those).

Plain Python and SQLAlchemy Core: no Flask, no I/O. Values only ever become bound parameters.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from sqlalchemy import Date, DateTime, Enum, Integer, Numeric, String, and_, cast, func, literal, not_, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.sqltypes import NullType

from bitrix_app.gateway.dates import DateValueError, is_date_only, parse_temporal, validate_portal_format

MAX_DEPTH = 8
MAX_CONDITIONS = 1000
MAX_LIST_VALUES = 1000
MAX_TOTAL_VALUES = 10000  # keeps a statement well under PostgreSQL's 65535 bound parameters
MAX_NUMBER_LENGTH = 100
MAX_EXPONENT = 40
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
COLUMN_TYPES = ("int", "double", "money", "string", "date", "datetime")
_NUMBER_TYPES = ("int", "double", "money")
_TEMPORAL_TYPES = ("date", "datetime")
_SHOWN_MAX = 60
_LIKE_ESCAPE = "/"
_END_OF_DAY = time(23, 59, 59)
_NUMERIC_KEY = re.compile(r"[0-9]+")

# Operator prefix -> (comparison, negated). Matched longest first.
_OPERATORS: dict[str, tuple[str, bool]] = {
    "!><": ("between", True), "!=%": ("like", True), "!%=": ("like", True), "!==": ("eq", True),
    "!>=": ("ge", True), "!<=": ("le", True),
    "!=": ("eq", True), "!%": ("contains", True), "!@": ("in", True), "!>": ("gt", True), "!<": ("lt", True),
    "><": ("between", False), ">=": ("ge", False), "<=": ("le", False), "=%": ("like", False),
    "%=": ("like", False), "==": ("eq", False),
    "!": ("match", True), "=": ("eq", False), "%": ("contains", False), ">": ("gt", False),
    "<": ("lt", False), "@": ("in", False),
}
_PREFIXES = sorted(_OPERATORS, key=len, reverse=True)
_NULL_ENCODING_PREFIXES = frozenset({"=", "==", "!=", "!=="})
_ORDERINGS = {"gt": "__gt__", "ge": "__ge__", "lt": "__lt__", "le": "__le__"}
_BIND_TYPES = {"int": Integer, "double": Numeric, "money": Numeric, "string": String,
               "date": Date, "datetime": DateTime}


class FilterError(ValueError):
    """A filter we cannot translate; `message` is a sentence for the person who sent it."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class FilterColumn:
    expression: ColumnElement  # the SQLAlchemy column (or labeled expression) to compare
    type: str  # 'int' | 'double' | 'money' | 'string' | 'date' | 'datetime'


def translate(filter_: Any, columns: Mapping[str, FilterColumn],
              portal_format: str | None = None) -> ColumnElement[bool] | None:
    """`columns` maps the names the filter may use (BI column names) to columns.

    Returns None for an empty or absent filter; raises FilterError for anything it cannot
    translate, and ValueError for a bad `columns` type or `portal_format` (our configuration).
    """
    for name, column in columns.items():
        if column.type not in COLUMN_TYPES:
            raise ValueError(f"Column {name!r} has type {column.type!r}; expected one of {COLUMN_TYPES}.")
    if portal_format is not None:
        portal_format = validate_portal_format(portal_format)
    if filter_ is None or filter_ == "":
        return None
    return _Translator(columns, portal_format).group(filter_, depth=1)


class _Translator:
    """One translation: the columns, the portal's date format and the running counts."""

    def __init__(self, columns: Mapping[str, FilterColumn], portal_format: str | None):
        self.columns = columns
        self.portal_format = portal_format
        self.conditions = 0
        self.values = 0

    def group(self, node: Any, depth: int) -> ColumnElement[bool] | None:
        if depth > MAX_DEPTH:
            raise FilterError("FILTER_TOO_COMPLEX", f"The filter is nested more than {MAX_DEPTH} levels deep.")
        entries = _entries(node, where="The filter" if depth == 1 else "A sub-filter")
        logic = _logic(entries)
        parts = []
        for key, value in entries.items():
            part = None if key.upper() == "LOGIC" else self.entry(key, value, depth)
            if part is not None:
                parts.append(part)
        if not parts:
            return None
        if logic == "OR":
            return or_(*parts)
        joined = and_(*parts)
        return not_(joined) if logic == "NOT" else joined

    def entry(self, key: str, value: Any, depth: int) -> ColumnElement[bool] | None:
        if _NUMERIC_KEY.fullmatch(key):
            return self.group(value, depth + 1)
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise FilterError("FILTER_TOO_COMPLEX", f"The filter has more than {MAX_CONDITIONS} conditions.")
        prefix, name = _split_key(key)
        column = self.columns.get(name)
        if column is None:
            raise FilterError("FILTER_UNKNOWN_COLUMN",
                              f'The filter key "{_shown(key)}" names a column "{_shown(name)}" '
                              "that this table does not have.")
        values, is_list = self.raw_values(key, value)
        if not values:
            return None
        return _Condition(self, key, name, column, prefix).build(values, is_list)

    def raw_values(self, key: str, value: Any) -> tuple[list[str], bool]:
        values, is_list = _leaf_values(key, value)
        if len(values) > MAX_LIST_VALUES:
            raise FilterError("FILTER_TOO_COMPLEX",
                              f'The filter entry "{_shown(key)}" lists more than {MAX_LIST_VALUES} values.')
        self.values += len(values)
        if self.values > MAX_TOTAL_VALUES:
            raise FilterError("FILTER_TOO_COMPLEX", f"The filter has more than {MAX_TOTAL_VALUES} values in all.")
        return values, is_list


class _Condition:
    """One `<prefix><COLUMN>: value` entry, turned into an expression."""

    def __init__(self, translator: _Translator, key: str, name: str, column: FilterColumn, prefix: str):
        self.translator = translator
        self.key = key
        self.name = name
        self.column = column
        self.prefix = prefix
        self.comparison, self.negated = _OPERATORS.get(prefix, ("match", False))
        self.is_string = column.type == "string"

    def build(self, values: list[str], is_list: bool) -> ColumnElement[bool]:
        if not is_list and self.prefix in _NULL_ENCODING_PREFIXES and values[0] == "0":
            return self.null_check()
        positive = self.positive(values, is_list)
        if not self.negated:
            return positive
        if self.is_string:
            return or_(self.column.expression.is_(None), not_(positive))
        return not_(positive)

    def null_check(self) -> ColumnElement[bool]:
        column = self.column.expression
        if self.column.type in _NUMBER_TYPES:
            is_empty = or_(column.is_(None), column == literal(0, _BIND_TYPES[self.column.type]()))
            return not_(is_empty) if self.negated else is_empty
        return column.is_not(None) if self.negated else column.is_(None)

    def positive(self, values: list[str], is_list: bool) -> ColumnElement[bool]:
        comparison = self.effective_comparison(is_list)
        if comparison == "between":
            return self.between(values)
        if comparison in _ORDERINGS:
            self.check_ignored(values[1:])
            bound = "end" if comparison == "le" else "start"
            return getattr(self.compared(), _ORDERINGS[comparison])(self.bound_value(values[0], bound))
        if comparison == "like":
            return or_(*(_text(self.column.expression).ilike(_like_pattern(v), escape=_LIKE_ESCAPE)
                         for v in self.strings(values)))
        if comparison == "contains":
            return or_(*(_text(self.column.expression).icontains(v, autoescape=True)
                         for v in self.strings(values)))
        return self.membership(values)

    def effective_comparison(self, is_list: bool) -> str:
        """Pattern operators compare for equality on numbers and dates; a bare key is LIKE or IN."""
        if self.comparison in ("match", "like", "contains") and not self.is_string:
            return "in"
        if self.comparison == "match":
            return "in" if is_list else "like"
        return self.comparison

    def membership(self, values: list[str]) -> ColumnElement[bool]:
        bound = [self.bound_value(value, "start") for value in values]
        if len(bound) == 1:
            return self.compared() == bound[0]
        return self.compared().in_(bound)

    def between(self, values: list[str]) -> ColumnElement[bool]:
        if len(values) < 2:
            raise FilterError("FILTER_BAD_VALUE",
                              f'The filter entry "{_shown(self.key)}" needs two values, a lower and an upper bound.')
        self.check_ignored(values[2:])
        low, high = self.bound_value(values[0], "start"), self.bound_value(values[1], "end")
        return self.compared().between(low, high)

    def check_ignored(self, values: list[str]) -> None:
        """Values past the ones an operator uses still have to be valid: a bad one is a mistake."""
        for value in values:
            self.convert(value, "start")

    def compared(self) -> ColumnElement:
        """The column as compared: lower-cased text for strings, itself otherwise."""
        if self.is_string:
            return func.lower(_text(self.column.expression))
        return self.column.expression

    def bound_value(self, text: str, bound: str) -> ColumnElement:
        """A bound parameter holding the converted value, in the form `compared()` expects."""
        value = self.convert(text, bound)
        parameter = literal(value, _BIND_TYPES[self.column.type]())
        return func.lower(parameter) if self.is_string else parameter

    def convert(self, text: str, bound: str) -> Any:
        kind = self.column.type
        if kind == "string":
            return self.strings([text])[0]
        if kind == "int":
            return self.integer(text)
        if kind in ("double", "money"):
            return self.decimal(text)
        return self.temporal(text, bound)

    def strings(self, values: list[str]) -> list[str]:
        for value in values:
            if "\x00" in value:
                raise self.bad_value(value, "contains a NUL character")
        return values

    def integer(self, text: str) -> int:
        number = self.decimal(text)
        if number != number.to_integral_value():
            raise self.bad_value(text, "is not a whole number")
        if not INT_MIN <= number <= INT_MAX:
            raise self.bad_value(text, "is out of range")
        return int(number)

    def decimal(self, text: str) -> Decimal:
        try:
            number = Decimal(text.strip()) if len(text) <= MAX_NUMBER_LENGTH else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise self.bad_value(text, "is not a number")
        # PHP writes large floats as 1.0E+25; exponents beyond any column's range would fail in the database.
        if number and not -MAX_EXPONENT <= number.adjusted() <= MAX_EXPONENT:
            raise self.bad_value(text, "is out of range")
        return number

    def temporal(self, text: str, bound: str):
        portal_format = self.translator.portal_format
        try:
            value = parse_temporal(text, self.column.type, portal_format)
        except DateValueError as error:
            raise FilterError("FILTER_BAD_VALUE", f"Column {self.name}: {error}") from None
        # Only a datetime column needs to know whether the value had a time of day.
        if bound == "end" and self.column.type == "datetime" and is_date_only(text, portal_format):
            return datetime.combine(value.date(), _END_OF_DAY)
        return value

    def bad_value(self, text: str, problem: str) -> FilterError:
        return FilterError("FILTER_BAD_VALUE",
                           f'The filter value "{_shown(text)}" for column {self.name} {problem}.')


def _entries(node: Any, where: str) -> dict[str, Any]:
    """A filter level as a dict with string keys; Python lists count as PHP lists."""
    if isinstance(node, (list, tuple)):
        node = {str(index): item for index, item in enumerate(node)}
    if not isinstance(node, dict):
        raise FilterError("FILTER_BAD_SHAPE", f"{where} must be a set of conditions, not a single value.")
    entries: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise FilterError("FILTER_BAD_SHAPE", f"{where} has a key that is not text.")
        entries[str(key)] = value
    return entries


def _logic(entries: dict[str, Any]) -> str:
    given = [value for key, value in entries.items() if key.upper() == "LOGIC"]
    if not given:
        return "AND"
    if len(given) > 1:
        raise FilterError("FILTER_BAD_LOGIC", "A filter level gives LOGIC more than once.")
    logic = given[0]
    if not isinstance(logic, str) or logic.strip().upper() not in ("AND", "OR", "NOT"):
        shown = _shown(logic) if isinstance(logic, str) else "a list"
        raise FilterError("FILTER_BAD_LOGIC", f'The filter\'s LOGIC must be AND, OR or NOT, not "{shown}".')
    return logic.strip().upper()


def _split_key(key: str) -> tuple[str, str]:
    prefix = next((p for p in _PREFIXES if key.startswith(p)), "")
    return prefix, key[len(prefix):]


def _leaf_values(key: str, value: Any) -> tuple[list[str], bool]:
    """The entry's values and whether they came as a list."""
    if isinstance(value, str):
        return [value], False
    if isinstance(value, dict):
        if not all(isinstance(k, (str, int)) and _NUMERIC_KEY.fullmatch(str(k)) for k in value):
            raise _bad_shape(key)
        value = list(value.values())
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise _bad_shape(key)
    return list(value), True


def _bad_shape(key: str) -> FilterError:
    return FilterError("FILTER_BAD_SHAPE",
                       f'The filter entry "{_shown(key)}" must be a text value or a list of text values.')


def _text(expression: ColumnElement) -> ColumnElement:
    """The expression as text: non-text types (uuid, PostgreSQL enums, ...) are cast first."""
    kind = expression.type
    if isinstance(kind, NullType) or (isinstance(kind, String) and not isinstance(kind, Enum)):
        return expression
    return cast(expression, String())


def _like_pattern(value: str) -> str:
    """Rewrite a backslash-escaped LIKE pattern with our escape character, the same on every database."""
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            char = next(chars, "\\")
            out.append(_LIKE_ESCAPE + char if char in "%_" + _LIKE_ESCAPE else char)
        elif char == _LIKE_ESCAPE:
            out.append(_LIKE_ESCAPE * 2)
        else:
            out.append(char)
    return "".join(out)


def _shown(text: str) -> str:
    """User text for a message: printable and short."""
    shown = "".join(char if char.isprintable() else "?" for char in text[:_SHOWN_MAX])
    return shown + ("…" if len(text) > _SHOWN_MAX else "")
