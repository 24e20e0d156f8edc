"""`flask --app app connectors|sources list|get|update --portal X`: BI Builder objects of one portal.

Reads and changes go through the tab's service (services/tab.py), so the CLI validates exactly
as the tab does and explains errors with the same sentences. Source setting values are secrets:
they are never printed, only whether each one is set.
"""
from __future__ import annotations

import functools
import json

import click
from flask import current_app
from flask.cli import AppGroup

from ..services.errors import BitrixError, Rejected
from ..services.history import CONNECTOR, SOURCE, Actor, EditConflict, source_changes
from ..services.messages import explain
from ..services.session_tokens import TabSession
from ..services.tab import InvalidFields, TabService, parse_id
from .output import bitrix, cli_lang, echo_json, echo_result, fail, read_fields, table

connectors = AppGroup("connectors", help="BI Builder connectors of one portal.")
sources = AppGroup("sources", help="BI Builder sources (connections) of one portal; setting values stay hidden.")

portal_option = click.option(
    "--portal", required=True, envvar="BITRIX_PORTAL", metavar="PORTAL",
    help="Member id or domain of the portal (or set BITRIX_PORTAL).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
FIELDS_HELP = ("FIELDS is a JSON object, inline or as @file.json; ${PLAN_NAME} is taken from the environment "
               "(only variables starting with PLAN_ENV_PREFIX, default PLAN_).")


yes_option = click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
if_unchanged_option = click.option(
    "--if-unchanged", "if_version", metavar="VERSION",
    help="Change only if the object is still at VERSION (the `version` that get/list show); "
         "otherwise report who changed what and change nothing.",
)


def service_for(portal: str) -> TabService:
    """The tab's service acting as a portal administrator, through the portal's stored token;
    the history names the operator (BITRIX_OPERATOR, else USER) and "cli"; refusals and check
    outcomes are in BITRIX_LANG."""
    member_id = bitrix().portal(portal).member_id
    return TabService(bitrix(), TabSession(member_id=member_id, user_id=0, is_admin=True, can_edit=True,
                                           lang=cli_lang()), Actor.operator("cli"))


def reporting_errors(command):
    """Turn validation and Bitrix24 errors into readable messages and exit code 1."""
    @functools.wraps(command)
    def wrapper(*args, as_json: bool = False, **kwargs):
        try:
            return command(*args, as_json=as_json, **kwargs)
        except InvalidFields as exc:
            details = exc.fields(cli_lang())
            fail(exc.description, as_json=as_json, code=exc.code,
                 details=details if as_json else [f"{d['field']}: {d['message']}" for d in details])
        except EditConflict as exc:
            fail(exc.description, as_json=as_json, code=exc.code,
                 details=[exc.conflict] if as_json else _conflict_lines(exc.conflict))
        except Rejected as exc:
            fail(exc.description, as_json=as_json, code=exc.code)
        except BitrixError as exc:
            fail(explain(exc, cli_lang()), as_json=as_json, code=exc.code)
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
    click.echo(table(["ID", "TITLE", "SORT", "SETTINGS", "CHECK URL", "LAST CHANGE"],
                     [[c.get("id"), c.get("title"), c.get("sort"), _codes(c), c.get("urlCheck"),
                       _last_change(c.get("lastChange"))] for c in items])
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
@if_unchanged_option
@json_option
@reporting_errors
def update_connector(connector_id: str, fields: str, portal: str, if_version: str | None, as_json: bool):
    """Change a connector. Only fields that differ are sent; `settings` is the complete list."""
    outcome = service_for(portal).update_connector(connector_id, read_fields(fields), if_version)
    _report_update("Connector", connector_id, outcome["changed"], as_json)


# --- sources ---------------------------------------------------------------------------------

@sources.command("list")
@portal_option
@click.option("--connector", "connector_id", type=click.IntRange(min=1), metavar="ID",
              help="Only the sources of this connector.")
@json_option
@reporting_errors
def list_sources(portal: str, connector_id: int | None, as_json: bool):
    """The app's sources on the portal (setting values hidden)."""
    items = service_for(portal).sources()
    if connector_id is not None:
        items = [item for item in items if item.get("connectorId") == connector_id]
    if as_json:
        echo_json(items)
        return
    click.echo(table(["ID", "TITLE", "CONNECTOR", "ACTIVE", "SETTINGS SET", "LAST CHANGE"],
                     [[s.get("id"), s.get("title"), s.get("connectorId"), _yes_no(s.get("active")), _set_codes(s),
                       _last_change(s.get("lastChange"))] for s in items]) if items else "No sources.")


@sources.command("get")
@click.argument("source_id")
@portal_option
@json_option
@reporting_errors
def get_source(source_id: str, portal: str, as_json: bool):
    """One source; secret settings show only whether a value is set, the others their value."""
    item = service_for(portal).source(source_id)
    if as_json:
        echo_json(item)
        return
    _print_fields(item, skip=("settings",))
    click.echo("settings:")
    click.echo(_indent(table(["CODE", "NAME", "TYPE", "VALUE"],
                             [[s["code"], s["name"], s["type"], _shown_value(s)]
                              for s in item.get("settings") or []])))


@sources.command("update", epilog=FIELDS_HELP)
@click.argument("source_id")
@click.argument("fields")
@portal_option
@if_unchanged_option
@json_option
@reporting_errors
def update_source(source_id: str, fields: str, portal: str, if_version: str | None, as_json: bool):
    """Change a source. The current title is kept if FIELDS has none; settings merge by code.

    Reports the fields whose stored value really changed (setting codes, never values); a secret
    that was sent counts as changed, so the report never tells whether a guess was right."""
    requested, object_id = read_fields(fields), parse_id(source_id)
    tab = service_for(portal)
    before = tab.biconnector.source(object_id)
    outcome = tab.update_source(object_id, requested, if_version)
    sent = requested.get("settings") if isinstance(requested.get("settings"), dict) else {}
    changed = [change["field"] for change in source_changes(
        before, tab.biconnector.source(object_id), tab._is_secret_of(before), sent)] if outcome["changed"] else []
    if outcome["changed"] and not changed and not as_json:
        click.echo(f"Source #{source_id} saved: Bitrix24 already had these values, nothing changed.")
        return
    _report_update("Source", source_id, changed, as_json)


# --- history ----------------------------------------------------------------------------------

def _add_history_commands(group: AppGroup, kind: str, note: str) -> None:
    """`history ID` and `revert CHANGE_ID` for connectors or sources."""
    @group.command("history", help=f"Changes the app made to a {kind}, newest first (CHANGE ids for `revert`); "
                                   f"{note}")
    @click.argument("object_id", metavar=f"{kind.upper()}_ID")
    @portal_option
    @json_option
    @reporting_errors
    def history(object_id: str, portal: str, as_json: bool):
        _print_history(service_for(portal).history_of(kind, object_id), as_json)

    @group.command("revert", help=f"Put back the old values of one change of a {kind} (see `history`); "
                                  "secrets are never reverted.")
    @click.argument("change_id")
    @portal_option
    @if_unchanged_option
    @json_option
    @reporting_errors
    def revert(change_id: str, portal: str, if_version: str | None, as_json: bool):
        _revert(portal, change_id, kind, if_version, as_json)


_add_history_commands(connectors, CONNECTOR, "changes to the app's secret setting codes included.")
_add_history_commands(sources, SOURCE, "secret values show as ***.")


def _revert(portal: str, change_id: str, kind: str, if_version: str | None, as_json: bool) -> None:
    tab = service_for(portal)
    record = tab.history.change(parse_id(change_id))
    if record is not None and record.object_type != kind:
        fail(f"Change #{change_id} is a change of a {record.object_type}: use `{record.object_type}s revert`.",
             as_json=as_json, code="WRONG_KIND")
    outcome = tab.revert(change_id, if_version)
    _report_update(kind.capitalize(), str(outcome["id"]), outcome["changed"], as_json)


def _print_history(entries: list[dict], as_json: bool) -> None:
    if as_json:
        echo_json(entries)
        return
    if not entries:
        click.echo("No changes recorded.")
        return
    for entry in entries:
        undo = "" if entry["revertible"] else "  (not revertible)"
        click.echo(f"#{entry['id']}  {entry['at']}  {_actor(entry)}  {entry['action']}{undo}")
        for change in entry["changes"]:
            click.echo(f"    {change['field']}: {_value(change['old'])} -> {_value(change['new'])}")


def _conflict_lines(conflict: dict) -> list[str]:
    last = conflict.get("lastChange")
    lines = [f"last changed {last['at']} by {_actor(last)}"] if last else []
    lines += [f"{item['field']}: yours {_value(item['yours'])}, theirs {_value(item['theirs'])}"
              for item in conflict.get("fields") or []]
    return lines + [f"current version: {conflict['current'].get('version')}"]


def _actor(change: dict) -> str:
    actor = change["actor"]
    who = actor.get("name") or (f"user #{actor['id']}" if actor.get("id") else actor.get("kind"))
    return f"{who} ({change['via']})"


def _last_change(change: dict | None) -> str:
    return f"{change['at'][:16].replace('T', ' ')} {_actor(change)}" if change else "-"


def _value(value, limit: int = 60) -> str:
    if value is None or value == "":
        return "(empty)"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --- creating, deleting, testing ----------------------------------------------------------------

def _add_create_delete_commands(group: AppGroup, kind: str, add_help: str, delete_help: str) -> None:
    """`add FIELDS` and `delete ID` (asks first) for connectors or sources."""
    @group.command("add", epilog=FIELDS_HELP, help=add_help)
    @click.argument("fields")
    @portal_option
    @json_option
    @reporting_errors
    def add(fields: str, portal: str, as_json: bool):
        item = getattr(service_for(portal), f"add_{kind}")(read_fields(fields))
        echo_result(item, as_json, f'{kind.capitalize()} #{item["id"]} "{item["title"]}" created.')

    @group.command("delete", help=delete_help)
    @click.argument("object_id", metavar=f"{kind.upper()}_ID")
    @portal_option
    @yes_option
    @json_option
    @reporting_errors
    def delete(object_id: str, portal: str, yes: bool, as_json: bool):
        service = service_for(portal)
        title = getattr(service, kind)(object_id).get("title")
        confirm_delete(f'Delete {kind} #{object_id} "{title}"?', yes, as_json)
        outcome = getattr(service, f"delete_{kind}")(object_id)
        echo_result(outcome, as_json, f"{kind.capitalize()} #{outcome['deleted']} deleted.")


_add_create_delete_commands(
    connectors, CONNECTOR,
    "Create a custom connector (endpoints hosted elsewhere). FIELDS needs title, logo, the four URLs and "
    "settings; `secretSettings` lists the setting codes whose values stay hidden.",
    "Delete a custom connector. Bitrix24 refuses while sources use it.")
_add_create_delete_commands(
    sources, SOURCE,
    "Create a source on a custom connector: FIELDS has connectorId, title, settings (code to value) and "
    "optionally description. Bitrix24 checks the settings with the connector's urlCheck first.",
    "Delete a source. Bitrix24 refuses while BI Builder datasets use it.")


@sources.command("check")
@click.argument("source_id")
@portal_option
@json_option
@reporting_errors
def check_source(source_id: str, portal: str, as_json: bool):
    """Test connection: what Bitrix24 sees from the connector's urlCheck (exit 1 if it fails)."""
    result = service_for(portal).check_source(source_id, current_app.extensions.get("gateway"))
    if as_json:
        echo_json(result)
    else:
        status = f", HTTP {result['status']}" if result["status"] and not result["ok"] else ""
        click.echo(f"Source #{source_id}: {result['outcome']}{status}. {result['message']}",
                   err=not result["ok"])
    if not result["ok"]:
        raise SystemExit(1)


def confirm_delete(question: str, yes: bool, as_json: bool) -> None:
    """Ask `question` before deleting; scripts (--json) must say --yes, since a question would break
    their output."""
    if yes:
        return
    if as_json:
        fail("Deleting needs --yes together with --json.", as_json=True, code="CONFIRMATION_REQUIRED")
    if not click.confirm(question, default=False):
        fail("Nothing was deleted.", code="NOT_CONFIRMED")


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
        if key in skip:
            continue
        if key == "lastChange":
            text = _last_change(value)
        else:
            text = str(value) if value not in (None, "") else "-"
        click.echo(f"{key:<{width}}  {text if len(text) <= limit else text[:limit - 1] + '…'}")


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _codes(connector: dict) -> str:
    return ", ".join(str(s.get("code")) for s in connector.get("settings") or []) or "-"


def _shown_value(setting: dict) -> str:
    if setting.get("secret", True):
        return "(secret, set)" if setting.get("isSet") else "(secret, not set)"
    return setting.get("value") or "(empty)"


def _set_codes(source: dict) -> str:
    return ", ".join(s["code"] for s in source.get("settings") or [] if s.get("isSet")) or "-"


def _yes_no(value) -> str:
    return "yes" if value else "no"
