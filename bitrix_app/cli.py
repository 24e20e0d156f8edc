"""Command-line entry points (`flask --app app --help`).

    sandbox                          the local demo (app + fake Bitrix24)
    portals list|show|refresh|rotate-keys|sync-connectors   portals, tokens, our connectors (commands/portals.py)
    connectors list|get|update       one portal's connectors            (commands/objects.py)
    sources list|get|update          one portal's sources               (commands/objects.py)
    databases list|get|add|update|check|delete   databases behind the gateway (commands/databases.py)
    plan apply PLAN                  a declared state across portals    (commands/plan.py)

Every command stops on a configuration problem met while it runs (a stored value no configured
key decrypts, a database without the schema) with one `Error (CODE): …` line saying what to do.
"""
from __future__ import annotations

import functools

import click
from flask import Flask
from sqlalchemy.exc import OperationalError, ProgrammingError

from .services.crypto import TokenCipherError

DECRYPT_HINT = ("TOKEN_ENCRYPTION_KEYS must include the key these values were encrypted with: put a new key first "
                "and keep the old ones after it until `flask --app app portals rotate-keys` has run.")
SCHEMA_HINT = "Check DATABASE_URL, and run `flask --app app db upgrade` to create or migrate the schema."


def register(app: Flask) -> None:
    from .commands.databases import databases
    from .commands.objects import connectors, sources
    from .commands.plan import plan
    from .commands.portals import portals
    from .sandbox.runner import sandbox_command

    for command in (sandbox_command, portals, connectors, sources, databases, plan):
        explain_configuration_errors(command)
        app.cli.add_command(command)


def explain_configuration_errors(command: click.Command) -> None:
    """Wrap the callback of `command` (and of every subcommand) once."""
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            explain_configuration_errors(subcommand)
    if command.callback is not None and not getattr(command.callback, "explains_errors", False):
        command.callback = _explaining(command.callback)


def _explaining(callback):
    from .commands.output import fail

    @functools.wraps(callback)
    def run(*args, **kwargs):
        as_json = bool(kwargs.get("as_json"))
        try:
            return callback(*args, **kwargs)
        except TokenCipherError as exc:
            fail(f"{exc} {DECRYPT_HINT}", as_json=as_json, code="TOKEN_DECRYPTION_FAILED")
        except (OperationalError, ProgrammingError) as exc:
            reason = str(exc.orig).strip().splitlines()[0][:200] if exc.orig else type(exc).__name__
            fail(f"The app's database cannot be used ({reason}). {SCHEMA_HINT}", as_json=as_json,
                 code="DATABASE_UNAVAILABLE")

    run.explains_errors = True
    return run
