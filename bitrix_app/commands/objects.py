"""`flask --app app connectors|sources list|get|update --portal X`: BI Builder objects of one portal.

Reads and changes go through the tab's service (services/tab.py), so the CLI validates exactly
as the tab does and explains errors with the same sentences. Source setting values are secrets:
they are never printed, only whether each one is set.
"""
from __future__ import annotations

import functools

import click
from flask.cli import AppGroup

from ..services.errors import BitrixError, Rejected
from ..services.messages import explain
from ..services.session_tokens import TabSession
from ..services.tab import InvalidFields, TabService
from .output import bitrix, echo_json, fail, read_fields, table

connectors = AppGroup("connectors", help="BI Builder connectors of one portal.")
sources = AppGroup("sources", help="BI Builder sources (connections) of one portal; setting values stay hidden.")

portal_option = click.option(
    "--portal", required=True, envvar="BITRIX_PORTAL", metavar="PORTAL",
    help="Member id or domain of the portal (or set BITRIX_PORTAL).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
FIELDS_HELP = ("FIELDS is a JSON object, inline or as @file.json; ${PLAN_NAME} is taken from the environment "
               "(only variables starting with PLAN_ENV_PREFIX, default PLAN_).")


def service_for(portal: str) -> TabService:
    """The tab's service acting as a portal administrator, through the portal's stored token."""
    member_id = bitrix().portal(portal).member_id
    return TabService(bitrix(), TabSession(member_id=member_id, user_id=0, is_admin=True, can_edit=True))


def reporting_errors(command):
    """Turn validation and Bitrix24 errors into readable messages and exit code 1."""
    @functools.wraps(command)
    def wrapper(*args, as_json: bool = False, **kwargs):
        try:
            return command(*args, as_json=as_json, **kwargs)
        except InvalidFields as exc:
            details = exc.fields()
            fail(exc.description, as_json=as_json, code=exc.code,
                 details=details if as_json else [f"{d['field']}: {d['message']}" for d in details])
        except Rejected as exc:
            fail(exc.description, as_json=as_json, code=exc.code)
        except BitrixError as exc:
            fail(explain(exc), as_json=as_json, code=exc.code)
    return wrapper


# --- connectors ------------------------------------------------------------------------------

@connectors.command("list")
@portal_option
@json_option
@reporting_errors
def list_connectors(portal: str, as_json: bool):
    """The app's connectors on the portal."""
    items = service_for(portal).connectors()
    if as_json:
        echo_json(items)
        return
    click.echo(table(["ID", "TITLE", "SORT", "SETTINGS", "CHECK URL"],
                     [[c.get("id"), c.get("title"), c.get("sort"), _codes(c), c.get("urlCheck")] for c in items])
               if items else "No connectors.")


@connectors.command("get")
@click.argument("connector_id")
@portal_option
@json_option
@reporting_errors
def get_connector(connector_id: str, portal: str, as_json: bool):
    """One connector, all fields."""
    item = service_for(portal).connector(connector_id)
    if as_json:
        echo_json(item)
        return
    _print_fields(item, skip=("settings",))
    click.echo("settings:")
    click.echo(_indent(table(["CODE", "NAME", "TYPE"],
                             [[s.get("code"), s.get("name"), s.get("type")] for s in item.get("settings") or []])))


@connectors.command("update", epilog=FIELDS_HELP)
@click.argument("connector_id")
@click.argument("fields")
@portal_option
@json_option
@reporting_errors
def update_connector(connector_id: str, fields: str, portal: str, as_json: bool):
    """Change a connector. Only fields that differ are sent; `settings` is the complete list."""
    outcome = service_for(portal).update_connector(connector_id, read_fields(fields))
    _report_update("Connector", connector_id, outcome["changed"], as_json)


# --- sources ---------------------------------------------------------------------------------

@sources.command("list")
@portal_option
@json_option
@reporting_errors
def list_sources(portal: str, as_json: bool):
    """The app's sources on the portal (setting values hidden)."""
    items = service_for(portal).sources()
    if as_json:
        echo_json(items)
        return
    click.echo(table(["ID", "TITLE", "CONNECTOR", "ACTIVE", "SETTINGS SET"],
                     [[s.get("id"), s.get("title"), s.get("connectorId"), _yes_no(s.get("active")), _set_codes(s)]
                      for s in items]) if items else "No sources.")


@sources.command("get")
@click.argument("source_id")
@portal_option
@json_option
@reporting_errors
def get_source(source_id: str, portal: str, as_json: bool):
    """One source; each setting shows only whether a value is set."""
    item = service_for(portal).source(source_id)
    if as_json:
        echo_json(item)
        return
    _print_fields(item, skip=("settings",))
    click.echo("settings:")
    click.echo(_indent(table(["CODE", "NAME", "TYPE", "VALUE"],
                             [[s["code"], s["name"], s["type"], "set" if s["isSet"] else "not set"]
                              for s in item.get("settings") or []])))


@sources.command("update", epilog=FIELDS_HELP)
@click.argument("source_id")
@click.argument("fields")
@portal_option
@json_option
@reporting_errors
def update_source(source_id: str, fields: str, portal: str, as_json: bool):
    """Change a source. The current title is kept if FIELDS has none; settings merge by code."""
    outcome = service_for(portal).update_source(source_id, read_fields(fields))
    _report_update("Source", source_id, outcome["changed"], as_json)


# --- printing ----------------------------------------------------------------------------------

def _report_update(kind: str, object_id: str, changed: list[str], as_json: bool) -> None:
    if as_json:
        echo_json({"id": int(object_id), "changed": changed})
    elif changed:
        click.echo(f"{kind} #{object_id} updated: {', '.join(changed)}.")
    else:
        click.echo(f"{kind} #{object_id}: nothing to change.")


def _print_fields(item: dict, skip: tuple[str, ...], limit: int = 100) -> None:
    width = max(len(key) for key in item)
    for key, value in item.items():
        if key not in skip:
            text = str(value) if value not in (None, "") else "-"
            click.echo(f"{key:<{width}}  {text if len(text) <= limit else text[:limit - 1] + '…'}")


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _codes(connector: dict) -> str:
    return ", ".join(str(s.get("code")) for s in connector.get("settings") or []) or "-"


def _set_codes(source: dict) -> str:
    return ", ".join(s["code"] for s in source.get("settings") or [] if s.get("isSet")) or "-"


def _yes_no(value) -> str:
    return "yes" if value else "no"
