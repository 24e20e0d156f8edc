"""Entry point: `gunicorn app:app` and `flask --app app <command>`.

`flask --app app sandbox` runs the local demo (the app plus a fake Bitrix24) with throwaway
settings of its own; every other entry point needs the production configuration.
"""
import sys

from bitrix_app import create_app
from bitrix_app.config import ProductionConfig, SandboxConfig


def _cli_command(argv: list[str]) -> str | None:
    args = iter(argv[1:])
    for arg in args:
        if arg in ("--app", "-A", "--env-file", "-e"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


if _cli_command(sys.argv) == "sandbox":
    from bitrix_app.sandbox.runner import sandbox_overrides

    app = create_app(SandboxConfig, sandbox_overrides())
else:
    app = create_app(ProductionConfig)
