"""Dates and datetimes as Bitrix24 sends them in connector filters (reference 6.9).

Filter values arrive in the portal's FORMAT_DATETIME (`31.05.2025 23:59:59`,
`05/31/2025 11:59:59 PM`), in its FORMAT_DATE (`31.05.2025`), or in ISO form. No REST method
tells us a portal's format, so an administrator may configure one; without it we fall back to
the usual defaults, told apart by their separator (`.` day first, `/` month first).

Bitrix format tokens (`main/lib/type/date.php`): YYYY, YY, MMMM (month name), MM, M (short
month name), DD, HH and GG (24-hour), H and G (12-hour), MI, SS, TT and T (am/pm). Month
names and am/pm markers are read in English. Values are naive wall-clock times.

Plain Python: no Flask, no I/O.
"""
from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

FORMAT_MAX_LENGTH = 40
_VALUE_SHOWN_MAX = 60

# Longest first, so that YYYY wins over YY and MMMM over MM over M.
_TOKENS: tuple[tuple[str, str, str], ...] = (
    ("YYYY", "%Y", "year"), ("MMMM", "%B", "month"),
    ("YY", "%y", "year"), ("MM", "%m", "month"), ("MI", "%M", "minute"), ("DD", "%d", "day"),
    ("HH", "%H", "hour24"), ("GG", "%H", "hour24"), ("SS", "%S", "second"), ("TT", "%p", "ampm"),
    ("M", "%b", "month"), ("H", "%I", "hour12"), ("G", "%I", "hour12"), ("T", "%p", "ampm"),
)
_DATE_FIELDS = frozenset({"year", "month", "day"})

_ISO_FORMATS: tuple[tuple[str, bool], ...] = (
    ("%Y-%m-%d %H:%M:%S", True), ("%Y-%m-%dT%H:%M:%S", True),
    ("%Y-%m-%d %H:%M:%S.%f", True), ("%Y-%m-%dT%H:%M:%S.%f", True),
    ("%Y-%m-%d %H:%M", True), ("%Y-%m-%dT%H:%M", True),
    ("%Y-%m-%d", False),
)
_DEFAULT_FORMATS: tuple[tuple[str, bool], ...] = (
    ("%d.%m.%Y %H:%M:%S", True), ("%d.%m.%Y %H:%M", True), ("%d.%m.%Y", False),
    ("%m/%d/%Y %H:%M:%S", True), ("%m/%d/%Y %H:%M", True), ("%m/%d/%Y", False),
)
_DEFAULTS_DESCRIBED = "DD.MM.YYYY HH:MI:SS, MM/DD/YYYY HH:MI:SS or YYYY-MM-DD HH:MI:SS, with or without the time"


class DateValueError(ValueError):
    """A filter value that is not a date in any accepted format."""


def bitrix_to_strptime(fmt: str) -> str:
    """Bitrix FORMAT_DATETIME/FORMAT_DATE tokens -> strptime: YYYY %Y, YY %y, MMMM %B, MM %m,
    M %b, DD %d, HH %H, H %I, GG %H, G %I, MI %M, SS %S, TT %p, T %p; literal separators kept.
    Unknown letters -> ValueError."""
    return "".join(strptime for _, strptime, _ in _tokenize(fmt))


def validate_portal_format(fmt: str) -> str:
    """Check a FORMAT_DATETIME (or FORMAT_DATE) an administrator configures for a portal.

    Returns it normalized (trimmed, upper case, single spaces); raises ValueError with a
    sentence saying what is wrong.
    """
    if not isinstance(fmt, str) or not fmt.strip():
        raise ValueError("The date format is empty; enter one such as DD.MM.YYYY HH:MI:SS.")
    normalized = " ".join(fmt.split()).upper()
    if len(normalized) > FORMAT_MAX_LENGTH:
        raise ValueError(f"The date format is longer than {FORMAT_MAX_LENGTH} characters.")
    fields = [field for _, _, field in _tokenize(normalized) if field]
    _check_fields(fields)
    return normalized


def parse_temporal(value: str, column_type: str, portal_format: str | None = None) -> date | datetime:
    """Read a filter value: a `date` for column_type 'date', a naive `datetime` for 'datetime'.

    Tried in order: the portal format (in full, then its date part alone) when given; the ISO
    forms; and only when no portal format is configured, the DD.MM.YYYY and MM/DD/YYYY defaults.
    A value without a time reads as midnight. Raises DateValueError naming the value and the
    expected format.
    """
    if column_type not in ("date", "datetime"):
        raise ValueError(f"column_type must be 'date' or 'datetime', not {column_type!r}.")
    moment, _ = _parse(value, portal_format)
    return moment.date() if column_type == "date" else moment


def is_date_only(value: str, portal_format: str | None = None) -> bool:
    """True when the value carries no time of day (`31.05.2025`, `2025-05-31`).

    Raises DateValueError, like parse_temporal, when the value is no date at all.
    """
    _, has_time = _parse(value, portal_format)
    return not has_time


def _parse(value: str, portal_format: str | None) -> tuple[datetime, bool]:
    if not isinstance(value, str):
        raise DateValueError(f"The value {value!r} is not a date written as text.")
    text = value.strip()
    for strptime_format, has_time in _candidates(portal_format):
        try:
            return datetime.strptime(text, strptime_format), has_time
        except ValueError:
            continue
    raise DateValueError(f'The value "{_shown(value)}" is not a date in the expected format '
                         f"{_expected(portal_format)}.")


@lru_cache(maxsize=64)
def _candidates(portal_format: str | None) -> tuple[tuple[str, bool], ...]:
    if portal_format is None:
        return _ISO_FORMATS + _DEFAULT_FORMATS
    full = validate_portal_format(portal_format)
    date_part = _date_part(full)
    own = [(bitrix_to_strptime(full), _has_time(full))]
    if date_part != full:
        own.append((bitrix_to_strptime(date_part), False))
    return tuple(own) + _ISO_FORMATS


def _expected(portal_format: str | None) -> str:
    if portal_format is None:
        return _DEFAULTS_DESCRIBED
    full = validate_portal_format(portal_format)
    date_part = _date_part(full)
    if date_part == full:
        return f"{full} (or YYYY-MM-DD)"
    return f"{full} or {date_part} (or YYYY-MM-DD HH:MI:SS)"


def _tokenize(fmt: str) -> list[tuple[str, str, str]]:
    """Split a Bitrix format into (text, strptime, field) parts; literals have field ''."""
    parts: list[tuple[str, str, str]] = []
    position = 0
    while position < len(fmt):
        token = next((t for t in _TOKENS if fmt.startswith(t[0], position)), None)
        if token is not None:
            parts.append(token)
            position += len(token[0])
            continue
        char = fmt[position]
        if char.isalpha():
            raise ValueError(f'The date format "{fmt}" contains "{char}", which is not a known part '
                             "(use YYYY, YY, MMMM, MM, M, DD, HH, H, GG, G, MI, SS, TT or T).")
        parts.append((char, "%%" if char == "%" else char, ""))
        position += 1
    return parts


def _check_fields(fields: list[str]) -> None:
    for field in set(fields):
        if fields.count(field) > 1:
            raise ValueError(f"The date format gives the {_FIELD_NAMES[field]} more than once.")
    if "hour12" in fields and "hour24" in fields:
        raise ValueError("The date format gives the hour more than once.")
    missing = [_FIELD_NAMES[f] for f in ("year", "month", "day") if f not in fields]
    if missing:
        raise ValueError(f"The date format has no {' or '.join(missing)}.")
    time_fields = [f for f in fields if f not in _DATE_FIELDS]
    if time_fields and fields.index(time_fields[0]) < max(fields.index(f) for f in _DATE_FIELDS):
        raise ValueError("The date format must give the date before the time.")
    _check_time_fields(set(time_fields))


def _check_time_fields(time_fields: set[str]) -> None:
    if not time_fields:
        return
    if not time_fields & {"hour24", "hour12"} or "minute" not in time_fields:
        raise ValueError("The date format's time needs both hours and minutes (HH:MI or H:MI TT).")
    if "hour12" in time_fields and "ampm" not in time_fields:
        raise ValueError("The date format uses 12-hour hours (H or G) without an am/pm marker (TT or T).")
    if "ampm" in time_fields and "hour12" not in time_fields:
        raise ValueError("The date format has an am/pm marker (TT or T) but 24-hour hours; use H or G.")


_FIELD_NAMES = {"year": "year", "month": "month", "day": "day", "hour24": "hour", "hour12": "hour",
                "minute": "minutes", "second": "seconds", "ampm": "am/pm marker"}


def _date_part(fmt: str) -> str:
    """The format up to its last date token: `DD.MM.YYYY HH:MI:SS` -> `DD.MM.YYYY`."""
    parts = _tokenize(fmt)
    last_date = max(index for index, (_, _, field) in enumerate(parts) if field in _DATE_FIELDS)
    return "".join(text for text, _, _ in parts[: last_date + 1])


def _has_time(fmt: str) -> bool:
    return any(field and field not in _DATE_FIELDS for _, _, field in _tokenize(fmt))


def _shown(value: str) -> str:
    text = "".join(char if char.isprintable() else "?" for char in value[:_VALUE_SHOWN_MAX])
    return text + ("…" if len(value) > _VALUE_SHOWN_MAX else "")
