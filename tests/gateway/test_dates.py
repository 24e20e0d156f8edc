"""Date parsing for connector filters: Bitrix format tokens, portal formats, defaults, ISO."""
from __future__ import annotations

from datetime import date, datetime

import pytest

from bitrix_app.gateway.dates import (
    DateValueError,
    bitrix_to_strptime,
    is_date_only,
    parse_temporal,
    validate_portal_format,
)


@pytest.mark.parametrize("bitrix, strptime", [
    ("DD.MM.YYYY HH:MI:SS", "%d.%m.%Y %H:%M:%S"),
    ("MM/DD/YYYY H:MI:SS TT", "%m/%d/%Y %I:%M:%S %p"),
    ("YYYY-MM-DD GG:MI", "%Y-%m-%d %H:%M"),
    ("DD MMMM YYYY G:MI T", "%d %B %Y %I:%M %p"),
    ("DD M YY", "%d %b %y"),
    ("DD.MM.YYYY", "%d.%m.%Y"),
    ("DD%MM", "%d%%%m"),
])
def test_bitrix_tokens_become_strptime_directives(bitrix, strptime):
    assert bitrix_to_strptime(bitrix) == strptime


@pytest.mark.parametrize("bitrix", ["DD.MM.YYYY Q", "dd.mm.yyyy", "YYYY-MM-DDX"])
def test_unknown_letters_in_a_format_are_refused(bitrix):
    with pytest.raises(ValueError, match="not a known part"):
        bitrix_to_strptime(bitrix)


@pytest.mark.parametrize("given, normalized", [
    ("DD.MM.YYYY HH:MI:SS", "DD.MM.YYYY HH:MI:SS"),
    ("  dd.mm.yyyy   hh:mi:ss ", "DD.MM.YYYY HH:MI:SS"),
    ("MM/DD/YYYY H:MI:SS TT", "MM/DD/YYYY H:MI:SS TT"),
    ("DD.MM.YYYY", "DD.MM.YYYY"),
    ("YYYY-MM-DD HH:MI", "YYYY-MM-DD HH:MI"),
])
def test_valid_portal_formats_are_normalized(given, normalized):
    assert validate_portal_format(given) == normalized


@pytest.mark.parametrize("given, sentence", [
    ("", "empty"),
    (None, "empty"),
    ("DD.MM HH:MI", "no year"),
    ("YYYY", "no month or day"),
    ("DD.MM.YYYY H:MI:SS", "without an am/pm marker"),
    ("DD.MM.YYYY HH:MI:SS TT", "24-hour hours"),
    ("DD.MM.YYYY.DD", "day more than once"),
    ("DD.MM.YYYY HH:GG", "hour more than once"),
    ("HH:MI DD.MM.YYYY", "date before the time"),
    ("DD.MM.YYYY HH", "both hours and minutes"),
    ("DD.MM.YYYY XX", "not a known part"),
    ("DD.MM.YYYY " + "-" * 40, "longer than"),
])
def test_bad_portal_formats_are_explained(given, sentence):
    with pytest.raises(ValueError, match=sentence):
        validate_portal_format(given)


@pytest.mark.parametrize("value, expected", [
    ("31.05.2025 23:59:59", datetime(2025, 5, 31, 23, 59, 59)),
    ("31.05.2025 23:59", datetime(2025, 5, 31, 23, 59)),
    ("31.05.2025", datetime(2025, 5, 31)),
    ("05/31/2025 23:59:59", datetime(2025, 5, 31, 23, 59, 59)),
    ("05/31/2025", datetime(2025, 5, 31)),
    ("2025-05-31", datetime(2025, 5, 31)),
    ("2025-05-31 23:59:59", datetime(2025, 5, 31, 23, 59, 59)),
    ("2025-05-31T23:59:59", datetime(2025, 5, 31, 23, 59, 59)),
    ("2025-05-31T23:59:59.250000", datetime(2025, 5, 31, 23, 59, 59, 250000)),
    ("  9999-12-31 23:59:59 ", datetime(9999, 12, 31, 23, 59, 59)),
    ("05.06.2025", datetime(2025, 6, 5)),  # the '.' default reads the day first
    ("06/05/2025", datetime(2025, 6, 5)),  # the '/' default reads the month first
])
def test_default_and_iso_forms_without_a_portal_format(value, expected):
    assert parse_temporal(value, "datetime") == expected


def test_a_date_column_gets_a_date_even_from_a_datetime_value():
    assert parse_temporal("31.05.2025 23:59:59", "date") == date(2025, 5, 31)
    assert type(parse_temporal("2025-05-31", "date")) is date
    assert type(parse_temporal("2025-05-31", "datetime")) is datetime


@pytest.mark.parametrize("portal_format, value, expected", [
    ("MM/DD/YYYY H:MI:SS TT", "05/31/2025 11:59:59 PM", datetime(2025, 5, 31, 23, 59, 59)),
    ("MM/DD/YYYY H:MI:SS TT", "05/31/2025 12:00:00 am", datetime(2025, 5, 31, 0, 0, 0)),
    ("MM/DD/YYYY H:MI:SS TT", "05/31/2025 1:05:00 pm", datetime(2025, 5, 31, 13, 5, 0)),
    ("MM/DD/YYYY H:MI:SS TT", "05/31/2025", datetime(2025, 5, 31)),
    ("DD MMMM YYYY HH:MI", "31 May 2025 17:01", datetime(2025, 5, 31, 17, 1)),
    ("DD MMMM YYYY HH:MI", "1 january 2025", datetime(2025, 1, 1)),
    ("DD M YYYY", "31 May 2025", datetime(2025, 5, 31)),
    ("DD M YYYY", "03 Dec 2024", datetime(2024, 12, 3)),
    ("YY-MM-DD HH:MI:SS", "25-05-31 08:00:00", datetime(2025, 5, 31, 8)),
    ("DD.MM.YYYY HH:MI:SS", "2025-05-31 23:59:59", datetime(2025, 5, 31, 23, 59, 59)),  # ISO still works
])
def test_a_configured_portal_format(portal_format, value, expected):
    assert parse_temporal(value, "datetime", portal_format) == expected


def test_a_configured_portal_format_replaces_the_defaults():
    # Month-first portal: the day-first default must not quietly read 31.05.2025.
    with pytest.raises(DateValueError, match=r'"31\.05\.2025".*MM/DD/YYYY HH:MI:SS or MM/DD/YYYY'):
        parse_temporal("31.05.2025", "date", "MM/DD/YYYY HH:MI:SS")


@pytest.mark.parametrize("value", [
    "31-05-2025", "2025-13-01", "32.05.2025", "31.05.2025 25:00:00", "yesterday", "",
    "2025-05-31T23:59:59+02:00", "05/31/2025 11:59:59 PM",
])
def test_bad_values_name_the_value_and_the_expected_format(value):
    with pytest.raises(DateValueError) as caught:
        parse_temporal(value, "datetime")
    assert f'"{value}"' in str(caught.value)
    assert "DD.MM.YYYY HH:MI:SS" in str(caught.value)


def test_a_long_or_odd_value_is_shortened_in_the_message():
    with pytest.raises(DateValueError) as caught:
        parse_temporal("1\n" + "x" * 500, "date")
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 250


def test_non_text_values_and_bad_column_types_are_refused():
    with pytest.raises(DateValueError):
        parse_temporal(20250531, "date")
    with pytest.raises(ValueError, match="column_type"):
        parse_temporal("2025-05-31", "string")
    with pytest.raises(ValueError, match="no year"):
        parse_temporal("2025-05-31", "date", "DD.MM")


@pytest.mark.parametrize("value, portal_format, expected", [
    ("31.05.2025", None, True),
    ("2025-05-31", None, True),
    ("05/31/2025", None, True),
    ("31.05.2025 00:00:00", None, False),
    ("2025-05-31T00:00", None, False),
    ("05/31/2025", "MM/DD/YYYY H:MI:SS TT", True),
    ("05/31/2025 12:00:00 AM", "MM/DD/YYYY H:MI:SS TT", False),
    ("31.05.2025", "DD.MM.YYYY", True),
])
def test_is_date_only(value, portal_format, expected):
    assert is_date_only(value, portal_format) is expected


def test_is_date_only_refuses_non_dates():
    with pytest.raises(DateValueError):
        is_date_only("soon")
