"""What a database exposes to BI Builder: its tables, views and saved queries, and their
columns with BI-safe codes and Bitrix types (reference 6.6, 6.7, 6.11)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Boolean, Date, DateTime, Float, Integer, Numeric, String, column, inspect, table, text
from sqlalchemy.dialects.postgresql import MONEY
from sqlalchemy.engine import Connection
from sqlalchemy.sql import sqltypes
from sqlalchemy.types import TypeEngine

from .names import column_codes, slug, unique_table_codes

BI_TYPES = ("int", "double", "money", "string", "date", "datetime")
SQLALCHEMY_TYPES = {"int": Integer, "double": Numeric, "money": Numeric, "string": String, "date": Date,
                    "datetime": DateTime}
MAX_SAVED_QUERY_LENGTH = 20000
_LEADING_COMMENTS = re.compile(r"^\s*((--[^\n]*\n)|(/\*.*?\*/)|\s)*", re.DOTALL)


@dataclass(frozen=True)
class Column:
    code: str  # what BI Builder sees and sends back (UPPER_SNAKE, at most 32)
    name: str  # the real column name
    type: str  # one of BI_TYPES
    native: str = ""  # "boolean" or "float" where the database type needs converting for JSON

    @property
    def sql_type(self) -> TypeEngine:
        if self.native == "boolean":
            return Boolean()
        if self.native == "float":
            return Float()
        return SQLALCHEMY_TYPES[self.type]()

    def to_dict(self) -> dict:
        return {"code": self.code, "name": self.name, "type": self.type, "native": self.native}

    def to_description(self) -> dict:
        return {"code": self.code, "name": self.name, "type": self.type}


@dataclass(frozen=True)
class SavedQuery:
    code: str
    title: str
    sql: str


@dataclass(frozen=True)
class Exposure:
    """An administrator's choice: one schema's tables and views (optionally only some), plus
    saved queries."""

    schema: str | None = None
    tables: tuple[str, ...] = ()
    saved_queries: tuple[SavedQuery, ...] = ()


@dataclass(frozen=True)
class TableRef:
    external_code: str  # the table list's `id`; sent back to us as `table`
    code: str  # the BI-safe name BI Builder proposes
    title: str
    name: str  # the real table name, or the saved query's code
    schema: str | None = None
    sql: str | None = None

    def to_list_entry(self) -> dict:
        return {"id": self.external_code, "code": self.code, "title": self.title}

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def list_tables(connection: Connection, exposure: Exposure, prefix: str, default_schema: str | None) -> list[TableRef]:
    schema = exposure.schema or default_schema
    inspector = inspect(connection)
    names = sorted(set(inspector.get_table_names(schema=schema)) | set(inspector.get_view_names(schema=schema)))
    if exposure.tables:
        names = [name for name in names if name in exposure.tables]
    queries = list(exposure.saved_queries)
    codes = unique_table_codes(prefix, [*names, *(f"q_{query.code}" for query in queries)])
    shown_schema = f"{schema}." if schema and schema != default_schema else ""
    tables = [TableRef(f"{prefix}:{schema + '.' if schema else ''}{name}", code, f"{shown_schema}{name}", name, schema)
              for name, code in zip(names, codes)]
    tables += [TableRef(f"{prefix}:query:{query.code}", code, query.title, query.code, sql=query.sql)
               for query, code in zip(queries, codes[len(names):])]
    return tables


def describe_table(connection: Connection, ref: TableRef, result_types) -> list[Column]:
    """Columns of a table (reflected) or of a saved query (from the cursor of an empty run)."""
    if ref.sql is None:
        reflected = inspect(connection).get_columns(ref.name, schema=ref.schema)
        pairs = [(item["name"], item["type"]) for item in reflected]
        return [Column(code, name, bi_type(type_), native_of(type_))
                for code, (name, type_) in zip(column_codes(name for name, _ in pairs), pairs)]
    result = connection.execution_options(stream_results=True).execute(saved_query_text(ref.sql))
    names = list(result.keys())
    types = result_types(result)
    result.close()
    return [Column(code, name, type_) for code, name, type_ in zip(column_codes(names), names, types)]


def selectable(ref: TableRef, columns: list[Column]):
    """The FROM of a data query: the table itself, or the saved query as a subquery."""
    cols = [column(item.name, item.sql_type) for item in columns]
    if ref.sql is None:
        return table(ref.name, *cols, schema=ref.schema)
    return saved_query_text(ref.sql).columns(*cols).subquery("saved_query")


def saved_query_text(sql: str):
    """The administrator's SQL as written: colons escaped so `:word` is never a bind parameter."""
    return text(sql.replace(":", "\\:"))


def bi_type(type_: TypeEngine) -> str:
    if isinstance(type_, MONEY):
        return "money"
    if isinstance(type_, (sqltypes.Boolean, sqltypes.Integer)):
        return "int"
    if isinstance(type_, sqltypes.Numeric):
        return "double"
    if isinstance(type_, sqltypes.DateTime):
        return "datetime"
    if isinstance(type_, sqltypes.Date):
        return "date"
    return "string"


def native_of(type_: TypeEngine) -> str:
    if isinstance(type_, sqltypes.Boolean):
        return "boolean"
    if isinstance(type_, sqltypes.Float):
        return "float"
    return ""


def check_saved_query(sql: str) -> str:
    """One read-only SELECT (or WITH ... SELECT). The database's read-only transaction is the
    real boundary; this only catches mistakes early with a sentence a person understands."""
    if not isinstance(sql, str) or not sql.strip():
        raise ValueError("Write the query: one SELECT statement.")
    cleaned = sql.strip().rstrip(";").strip()
    if len(cleaned) > MAX_SAVED_QUERY_LENGTH:
        raise ValueError(f"The query is longer than {MAX_SAVED_QUERY_LENGTH} characters.")
    if ";" in cleaned:
        raise ValueError("The query must be a single statement: remove the semicolons.")
    first_word = _LEADING_COMMENTS.sub("", cleaned).split(None, 1)[0].upper() if cleaned else ""
    if first_word not in ("SELECT", "WITH"):
        raise ValueError("Only a read-only SELECT query can be saved (it must start with SELECT or WITH).")
    return cleaned


def saved_query_code(title: str, position: int) -> str:
    return slug(title)[:60] or f"query_{position}"
