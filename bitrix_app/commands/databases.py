"""`flask --app app databases list|get|add|update|check|delete --portal X`: the databases one
portal brings into BI Builder through the connector gateway (gateway/databases.py, the same
service as the tab's "Databases"). Passwords are write-only: never printed."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from ..gateway.databases import DatabaseService
from ..services.history import Actor
from ..services.session_tokens import TabSession
from .objects import (
    FIELDS_HELP,
    _print_fields,
    _report_update,
    confirm_delete,
    if_unchanged_option,
    json_option,
    portal_option,
    reporting_errors,
    yes_option,
)
from .output import bitrix, cli_lang, echo_json, echo_result, read_fields, table

databases = AppGroup("databases", help="Databases served to BI Builder through the app's connectors.")


def service_for(portal: str) -> DatabaseService:
    member_id = bitrix().portal(portal).member_id
    session = TabSession(member_id=member_id, user_id=0, is_admin=True, can_edit=True, lang=cli_lang())
    return DatabaseService(bitrix(), current_app.extensions["gateway"], session, Actor.operator("cli"))


@databases.command("list")
@portal_option
@json_option
@reporting_errors
def list_databases(portal: str, as_json: bool):
    """Every database of the portal, with its Bitrix24 source."""
    items = service_for(portal).list()
    if as_json:
        echo_json(items)
        return
    click.echo(table(["ID", "TITLE", "KIND", "WHERE", "SOURCE", "CONNECTOR"],
                     [[d["id"], d["title"], d["kind"], _where(d), d["sourceId"], d["connectorId"]] for d in items])
               if items else "No databases.")


@databases.command("get")
@click.argument("database_id")
@portal_option
@json_option
@reporting_errors
def get_database(database_id: str, portal: str, as_json: bool):
    """One database entry (no password)."""
    item = service_for(portal).get(database_id)
    if as_json:
        echo_json(item)
    else:
        _print_fields(item, skip=())


@databases.command("add", epilog=FIELDS_HELP)
@click.argument("fields")
@portal_option
@json_option
@reporting_errors
def add_database(fields: str, portal: str, as_json: bool):
    """Test the connection, store the database and create its Bitrix24 source.

    FIELDS: {"title", "kind", "host", "port", "database", "user", "password", "tlsMode", "schema",
    "tables", "savedQueries"}; pass the password as ${PLAN_NAME} from the environment.
    """
    result = service_for(portal).add(read_fields(fields))
    echo_result(result, as_json, f"Database #{result['id']} added: source #{result['sourceId']} "
                                 f"on connector #{result['connectorId']}.")


@databases.command("update", epilog=FIELDS_HELP)
@click.argument("database_id")
@click.argument("fields")
@portal_option
@if_unchanged_option
@json_option
@reporting_errors
def update_database(database_id: str, fields: str, portal: str, if_version: str | None, as_json: bool):
    """Change a database entry; {"rotateSecret": true} gives its source a new secret."""
    requested = read_fields(fields)
    if if_version is not None:
        requested["ifVersion"] = if_version
    outcome = service_for(portal).update(database_id, requested)
    _report_update("Database", database_id, outcome["changed"], as_json)


@databases.command("check")
@click.argument("database_id")
@portal_option
@json_option
@reporting_errors
def check_database(database_id: str, portal: str, as_json: bool):
    """Connect as BI Builder would; exits 1 when the database does not answer."""
    result = service_for(portal).check(database_id)
    if as_json:
        echo_json(result)
    elif result["ok"]:
        click.echo(f"Database #{database_id}: connection OK, {result['tables']} table(s) exposed.")
    else:
        click.echo(f"Database #{database_id}: {result['message']} ({result['code']})", err=True)
    if not result["ok"]:
        raise SystemExit(1)


@databases.command("delete")
@click.argument("database_id")
@portal_option
@yes_option
@json_option
@reporting_errors
def delete_database(database_id: str, portal: str, yes: bool, as_json: bool):
    """Delete the Bitrix24 source (refused while BI Builder datasets use it), then the entry."""
    service = service_for(portal)
    title = service.get(database_id)["title"]
    confirm_delete(f'Delete database #{database_id} "{title}" and its Bitrix24 source?', yes, as_json)
    echo_result(service.delete(database_id), as_json, f"Database #{database_id} deleted.")


def _where(item: dict) -> str:
    if item["kind"] == "sqlite":
        return item["database"]
    return f"{item['host']}:{item['port']}/{item['database']}"
