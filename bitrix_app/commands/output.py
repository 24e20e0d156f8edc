"""Small helpers shared by the command groups: tables, JSON, failing with a clear message."""
from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from datetime import datetime

import click
from flask import current_app

from ..services.messages import normalize_lang
from ..services.plans import PlanError, substitute_environment


def bitrix():
    """The app's Bitrix for a command: its clients may wait the job cap (BITRIX_JOB_MAX_WAIT)."""
    return current_app.extensions["bitrix"].for_jobs()


def cli_lang() -> str:
    """The language of the sentences the services give the CLI (refusals, check outcomes):
    BITRIX_LANG (en, ru), default English."""
    return normalize_lang(os.environ.get("BITRIX_LANG"))


def table(headers: list[str], rows: list[list]) -> str:
    """A plain text table, columns padded to their widest cell."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(header)] + [len(row[index]) for row in cells]) for index, header in enumerate(headers)]
    lines = ["  ".join(header.ljust(width) for header, width in zip(headers, widths)).rstrip()]
    lines += ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def wrapped(label: str, text: str, indent: int = 4) -> str:
    """`label: text` on lines of the terminal's width (at most 100), continuation lines indented."""
    width = min(shutil.get_terminal_size().columns, 100)
    return textwrap.fill(f"{label}: {text}", width=width, subsequent_indent=" " * indent,
                         break_long_words=False, break_on_hyphens=False)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value).replace("\n", " ")


def echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def echo_result(result, as_json: bool, message: str) -> None:
    """`result` as JSON for scripts, else `message` for people."""
    if as_json:
        echo_json(result)
    else:
        click.echo(message)


def with_reasons(table_text: str, reasons: list[tuple[str, str]]) -> str:
    """A table, then each non-empty (label, reason) on wrapped lines of its own below it (a long
    reason inside a cell would break the table)."""
    lines = [wrapped(label, reason) for label, reason in reasons if reason]
    return table_text + ("\n\n" + "\n".join(lines) if lines else "")


def fail(message: str, *, as_json: bool = False, code: str = "ERROR", details: list | None = None):
    """Print an error (JSON on stdout for scripts, text on stderr for people; both with the code)
    and exit 1."""
    if as_json:
        echo_json({"error": code, "error_description": message, "details": details or []})
    else:
        click.echo(f"Error ({code}): {message}" if code != "ERROR" else f"Error: {message}", err=True)
        for line in details or []:
            click.echo(f"  {line}", err=True)
    sys.exit(1)


def read_fields(argument: str) -> dict:
    """FIELDS as inline JSON or `@path/to/file.json`; `${PLAN_NAME}` comes from the environment
    (names starting with PLAN_ENV_PREFIX only, as in plans)."""
    if argument.startswith("@"):
        try:
            with open(argument[1:], encoding="utf-8") as handle:
                raw = handle.read()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {argument[1:]}: {exc.strerror}", param_hint="FIELDS") from None
    else:
        raw = argument
    try:
        fields = json.loads(raw)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON ({exc})", param_hint="FIELDS") from None
    if not isinstance(fields, dict):
        raise click.BadParameter("must be a JSON object of field names to values", param_hint="FIELDS")
    try:
        return substitute_environment(fields, dict(os.environ), set())
    except PlanError as exc:
        raise click.BadParameter(str(exc), param_hint="FIELDS") from None
