"""Entry point: `gunicorn app:app` and `flask --app app <command>`.

`flask --app app sandbox` runs the local demo (the app plus a fake Bitrix24) with throwaway
settings of its own; every other entry point needs the production configuration. Without it
the process stops with one line per problem, except that `flask --app app [COMMAND] --help`
still lists and explains the commands.
"""
import sys
from pathlib import Path

from flask import Flask

from bitrix_app import create_app, register_commands
from bitrix_app.config import ConfigError, ProductionConfig, SandboxConfig
from bitrix_app.services.crypto import TokenCipherError

# gunicorn halts on this exit code of a worker ("App failed to load.") instead of restarting it forever.
GUNICORN_APP_LOAD_ERROR = 4


def _cli_command(argv: list[str]) -> str | None:
    args = iter(argv[1:])
    for arg in args:
        if arg in ("--app", "-A", "--env-file", "-e"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def _asks_flask_for_help(argv: list[str]) -> bool:
    program = Path(argv[0]) if argv else Path()
    is_flask = program.name == "flask" or program.parent.name == "flask"  # the script, or python -m flask
    return is_flask and ("--help" in argv or _cli_command(argv) is None)


def command_listing_app() -> Flask:
    """Just enough of the app for `--help` to list its commands; none of them runs without a configuration."""
    from flask_migrate.cli import db as db_commands

    listing = Flask("bitrix_app")
    register_commands(listing)
    listing.cli.add_command(db_commands)
    return listing


def stop(error: ConfigError):
    for line in str(error).splitlines():
        print(f"Configuration error: {line}", file=sys.stderr)
    raise SystemExit(GUNICORN_APP_LOAD_ERROR if "gunicorn" in sys.modules else 1)


KEY_HINT = ("Make a key with: python -c \"from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())\"")

if _asks_flask_for_help(sys.argv):
    try:
        app = create_app(ProductionConfig)
    except (ConfigError, TokenCipherError):
        app = command_listing_app()
elif _cli_command(sys.argv) == "sandbox":
    from bitrix_app.sandbox.runner import sandbox_overrides

    app = create_app(SandboxConfig, sandbox_overrides())
else:
    try:
        app = create_app(ProductionConfig)
    except ConfigError as error:
        stop(error)
    except TokenCipherError as error:  # TOKEN_ENCRYPTION_KEYS holds something that is not a key
        stop(ConfigError(f"{error} {KEY_HINT}"))
