"""Command-line entry points (`flask --app app --help`)."""
from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from .sandbox.runner import sandbox_command

    app.cli.add_command(sandbox_command)
