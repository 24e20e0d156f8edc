"""Command-line entry points (`flask --app app --help`).

    sandbox                          the local demo (app + fake Bitrix24)
    portals list|show|refresh|rotate-keys|sync-connectors   portals, tokens, our connectors (commands/portals.py)
    connectors list|get|update       one portal's connectors            (commands/objects.py)
    sources list|get|update          one portal's sources               (commands/objects.py)
    databases list|get|add|update|check|delete   databases behind the gateway (commands/databases.py)
    plan apply PLAN                  a declared state across portals    (commands/plan.py)
"""
from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from .commands.databases import databases
    from .commands.objects import connectors, sources
    from .commands.plan import plan
    from .commands.portals import portals
    from .sandbox.runner import sandbox_command

    for command in (sandbox_command, portals, connectors, sources, databases, plan):
        app.cli.add_command(command)
