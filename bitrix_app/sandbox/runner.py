"""`flask --app app sandbox`: the app and a fake Bitrix24 portal together on loopback.

Every run gets a folder of its own under `instance/` (a fresh SQLite file, the demo database) and
freshly generated credentials and keys, so no secret is ever shared with, or left for, a real
deployment, and a second sandbox never touches the first one's files. The run writes its settings
to an env file (mode 0600) for the command line, and deletes its folder and that file when it stops.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import sys
import threading
from pathlib import Path

import click
from flask import current_app, redirect
from flask.cli import with_appcontext
from werkzeug.serving import make_server

from ..services.crypto import TokenCipher

PRODUCTION_MARKERS = ("BITRIX_CLIENT_SECRET", "TOKEN_ENCRYPTION_KEYS", "DATABASE_URL")
DEFAULT_APP_PORT = 5000
DEFAULT_PORTAL_PORT = 5001
PROJECT_ROOT = Path(__file__).resolve().parents[2]
INSTANCE = PROJECT_ROOT / "instance"
DEMO_DOMAIN = "demo.bitrix24.test"
DEMO_DATABASE = {"title": "Demo sales (SQLite)", "kind": "sqlite", "database": "demo.db",
                 "description": "Companies, products and two years of deals, generated at start."}
# What the command line needs besides the generated settings: the production checks the sandbox skips.
CLI_ONLY_SETTINGS = {"BITRIX_ALLOW_INSECURE": "1", "ALLOW_SQLITE": "1", "BITRIX_PORTAL": DEMO_DOMAIN}
SHARED_SETTINGS = ("SECRET_KEY", "BITRIX_CLIENT_ID", "BITRIX_CLIENT_SECRET", "APP_PUBLIC_URL", "BITRIX_OAUTH_SERVER",
                   "BITRIX_JS_SDK_URL", "GATEWAY_KINDS", "GATEWAY_SQLITE_DIR", "GATEWAY_ALLOWED_NETWORKS")


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise click.ClickException(f"{name} must be a port number (1-65535), not {raw!r}.")
    return int(raw)


def env_file_path(app_port: int) -> Path:
    """`instance/sandbox.env` on the default port; each other port has its own file."""
    return INSTANCE / ("sandbox.env" if app_port == DEFAULT_APP_PORT else f"sandbox-{app_port}.env")


def sandbox_overrides() -> dict:
    """Settings for the sandbox app; no side effects (nothing is created before the command runs).
    Refuses to run next to a production configuration."""
    present = [name for name in PRODUCTION_MARKERS if os.environ.get(name)]
    if present:
        raise click.ClickException(
            "The sandbox cannot be enabled in a production configuration "
            f"({', '.join(present)} set). Unset them to run the local demo."
        )
    app_port = _port("SANDBOX_APP_PORT", DEFAULT_APP_PORT)
    portal_port = _port("SANDBOX_PORTAL_PORT", DEFAULT_PORTAL_PORT)
    if app_port == portal_port:
        raise click.ClickException("SANDBOX_APP_PORT and SANDBOX_PORTAL_PORT must differ.")
    run_dir = INSTANCE / f"sandbox-run-{app_port}-{secrets.token_hex(4)}"
    portal_url = f"http://127.0.0.1:{portal_port}"
    return {
        "SECRET_KEY": secrets.token_hex(32),
        "BITRIX_CLIENT_ID": "local.sandbox." + secrets.token_hex(4),
        "BITRIX_CLIENT_SECRET": secrets.token_urlsafe(32),
        "TOKEN_ENCRYPTION_KEYS": [TokenCipher.generate_key()],
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{run_dir / 'app.db'}",
        "APP_PUBLIC_URL": f"http://127.0.0.1:{app_port}",
        "BITRIX_OAUTH_SERVER": portal_url,
        "BITRIX_JS_SDK_URL": f"{portal_url}/bx24.js",
        "GATEWAY_KINDS": "sqlite,postgresql,mysql",
        "GATEWAY_SQLITE_DIR": str(run_dir / "data"),  # the demo database lives here
        "GATEWAY_ALLOWED_NETWORKS": "127.0.0.1/32",  # local databases may be added in the sandbox
        "SANDBOX_APP_PORT": app_port,
        "SANDBOX_PORTAL_PORT": portal_port,
        "SANDBOX_RUN_DIR": str(run_dir),
    }


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _busy(port: int) -> click.ClickException:
    return click.ClickException(
        f"Port {port} on 127.0.0.1 is in use (another sandbox?); nothing was started or deleted. "
        "Stop it, or set SANDBOX_APP_PORT / SANDBOX_PORTAL_PORT to free ports.")


def cli_settings(config: dict) -> dict[str, str]:
    """The environment that makes `flask --app app …` use this run's database and portal."""
    values = {name: str(config[name]) for name in SHARED_SETTINGS}
    values["TOKEN_ENCRYPTION_KEYS"] = ",".join(config["TOKEN_ENCRYPTION_KEYS"])
    values["DATABASE_URL"] = config["SQLALCHEMY_DATABASE_URI"]
    return {**values, **CLI_ONLY_SETTINGS}


def env_file_text(values: dict[str, str]) -> str:
    quoted = {name: _quoted(value) for name, value in values.items()}
    return ("# Written by `flask --app app sandbox` for the command line; deleted when that sandbox stops.\n"
            + "".join(f"{name}={value}\n" for name, value in quoted.items()))


def _quoted(value: str) -> str:
    """Single quotes: python-dotenv takes the text as it is (no `${…}` expansion, no escapes)."""
    if "'" not in value:
        return f"'{value}'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_private_file(path: Path, text: str) -> None:
    """Written whole (a reader never sees half a file) and readable only by the user; a file or
    link left at the temporary name is never written through."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)


def shown_path(path: Path) -> str:
    """Relative to the current directory when inside it, as people type it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def cli_line(env_file: Path) -> str:
    program = Path(sys.argv[0]) if sys.argv else Path("flask")
    flask = shown_path(program.resolve()) if program.name == "flask" and program.exists() else "flask"
    if "/" in flask and not flask.startswith(("/", ".")):
        flask = f"./{flask}"
    where = "" if Path.cwd() == PROJECT_ROOT else f"cd {PROJECT_ROOT} && "
    return f"{where}{flask} --app app --env-file {shown_path(env_file)} portals list"


def start_fake_portal(config: dict):
    from .fake import FakeBitrix24

    fake = FakeBitrix24(
        client_id=config["BITRIX_CLIENT_ID"],
        client_secret=config["BITRIX_CLIENT_SECRET"],
        app_url=config["APP_PUBLIC_URL"],
    )
    fake.start(host="127.0.0.1", port=config["SANDBOX_PORTAL_PORT"])
    portal = fake.add_portal(domain=DEMO_DOMAIN)
    portal.add_user(name="Olga Reader", admin=False, bi_access=True)
    return fake, portal


def install_with_demo_database(app, fake, portal) -> dict:
    """Install the app on the fake portal (its connectors get registered) and add the demo
    database, so the portal's BI Builder page shows data at once."""
    from ..gateway.databases import DatabaseService
    from ..services.session_tokens import TabSession
    from .demo_data import create_demo_database

    create_demo_database(Path(app.config["GATEWAY_SQLITE_DIR"]) / DEMO_DATABASE["database"])
    response = fake.install(portal)
    if response.status_code != 200:
        raise click.ClickException(f"Installing the app on the fake portal failed: {response.text[:300]}")
    fake.finish_install(portal)
    session = TabSession(member_id=portal.member_id, user_id=portal.admin.id, is_admin=True, can_edit=True)
    return DatabaseService(app.extensions["bitrix"], app.extensions["gateway"], session).add(DEMO_DATABASE)


def _stop_on_sigterm() -> None:
    """`kill` (and a test's terminate()) stops the sandbox like Ctrl+C, so it cleans up after itself."""
    def stop(_signum, _frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


@click.command("sandbox")
@with_appcontext
def sandbox_command():
    """Run the app and a fake Bitrix24 portal on loopback, then print the URL to open.

    Each run uses its own folder under instance/ and deletes it when it stops; the settings for
    the command line go to instance/sandbox.env (instance/sandbox-PORT.env on another port).
    Ports: SANDBOX_APP_PORT (5000) and SANDBOX_PORTAL_PORT (5001).
    """
    app = current_app._get_current_object()
    if not app.config.get("SANDBOX"):
        raise click.ClickException("The sandbox cannot be enabled in a production configuration.")
    for port in (app.config["SANDBOX_APP_PORT"], app.config["SANDBOX_PORTAL_PORT"]):
        if _port_in_use(port):
            raise _busy(port)
    _stop_on_sigterm()
    run_dir = Path(app.config["SANDBOX_RUN_DIR"])
    env_file = env_file_path(app.config["SANDBOX_APP_PORT"])
    env_text = env_file_text(cli_settings(app.config))
    fake = server = None
    try:
        INSTANCE.mkdir(exist_ok=True)
        run_dir.mkdir(mode=0o700)
        (run_dir / "data").mkdir()
        fake, portal, server = _serve(app)
        demo = install_with_demo_database(app, fake, portal)
        write_private_file(env_file, env_text)
        _print_urls(portal, demo, env_file)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.shutdown()
        if fake is not None:
            fake.stop()
        _clean_up(app, run_dir, env_file, env_text)


def _serve(app):
    """Schema, fake portal, app server; a port taken since the check is the same one-line refusal."""
    from flask_migrate import upgrade

    upgrade()
    port = app.config["SANDBOX_PORTAL_PORT"]
    try:
        fake, portal = start_fake_portal(app.config)
        port = app.config["SANDBOX_APP_PORT"]
        server = make_server("127.0.0.1", port, app, threaded=True)
    except OSError:
        raise _busy(port) from None
    app.add_url_rule("/", "sandbox_home", lambda: redirect(f"{portal.page_url}?view=app"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake, portal, server


def _print_urls(portal, demo: dict, env_file: Path) -> None:
    click.echo(f"Open:       {portal.page_url}?view=app   (the app's tab as the administrator; "
               "&user=2 as a non-administrator, &lang=ru in Russian)")
    click.echo(f"BI Builder: {portal.page_url}?view=bi&source={demo['sourceId']}   "
               "(the demo database through the app's connector)")
    click.echo(f"CLI:        {cli_line(env_file)}")
    click.echo("Ctrl+C stops the sandbox and deletes this run's database.")


def _clean_up(app, run_dir: Path, env_file: Path, env_text: str) -> None:
    """Only this run's files: its folder, and the env file if it is still the one this run wrote."""
    from ..extensions import db

    db.engine.dispose()
    try:
        if env_file.read_text(encoding="utf-8") == env_text:
            env_file.unlink()
    except OSError:
        pass
    shutil.rmtree(run_dir, ignore_errors=True)
