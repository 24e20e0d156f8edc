"""`flask --app app sandbox`: the app and a fake Bitrix24 portal together on loopback.

Every run starts from a fresh SQLite file with freshly generated credentials and keys, so no
secret is ever shared with, or left for, a real deployment.
"""
from __future__ import annotations

import os
import secrets
import socket
import threading
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from werkzeug.serving import make_server

from ..services.crypto import TokenCipher

PRODUCTION_MARKERS = ("BITRIX_CLIENT_SECRET", "TOKEN_ENCRYPTION_KEYS", "DATABASE_URL")
DEFAULT_APP_PORT = 5000
DEFAULT_PORTAL_PORT = 5001
SANDBOX_DB = Path(__file__).resolve().parents[2] / "instance" / "sandbox.db"
SANDBOX_DATA = SANDBOX_DB.parent / "sandbox-data"  # GATEWAY_SQLITE_DIR: the demo database lives here
DEMO_DATABASE = {"title": "Demo sales (SQLite)", "kind": "sqlite", "database": "demo.db",
                 "description": "Companies, products and two years of deals, generated at start."}


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def sandbox_overrides() -> dict:
    """Settings for the sandbox app. Refuses to run next to a production configuration."""
    present = [name for name in PRODUCTION_MARKERS if os.environ.get(name)]
    if present:
        raise click.ClickException(
            "The sandbox cannot be enabled in a production configuration "
            f"({', '.join(present)} set). Unset them to run the local demo."
        )
    SANDBOX_DB.parent.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{SANDBOX_DB}{suffix}").unlink(missing_ok=True)
    app_port = _port("SANDBOX_APP_PORT", DEFAULT_APP_PORT)
    portal_port = _port("SANDBOX_PORTAL_PORT", DEFAULT_PORTAL_PORT)
    portal_url = f"http://127.0.0.1:{portal_port}"
    return {
        "SECRET_KEY": secrets.token_hex(32),
        "BITRIX_CLIENT_ID": "local.sandbox." + secrets.token_hex(4),
        "BITRIX_CLIENT_SECRET": secrets.token_urlsafe(32),
        "TOKEN_ENCRYPTION_KEYS": [TokenCipher.generate_key()],
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{SANDBOX_DB}",
        "APP_PUBLIC_URL": f"http://127.0.0.1:{app_port}",
        "BITRIX_OAUTH_SERVER": portal_url,
        "BITRIX_JS_SDK_URL": f"{portal_url}/bx24.js",
        "GATEWAY_KINDS": "sqlite,postgresql,mysql",
        "GATEWAY_SQLITE_DIR": str(SANDBOX_DATA),
        "GATEWAY_ALLOWED_NETWORKS": "127.0.0.1/32",  # local databases may be added in the sandbox
        "SANDBOX_APP_PORT": app_port,
        "SANDBOX_PORTAL_PORT": portal_port,
    }


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def start_fake_portal(config: dict):
    from .fake import FakeBitrix24

    fake = FakeBitrix24(
        client_id=config["BITRIX_CLIENT_ID"],
        client_secret=config["BITRIX_CLIENT_SECRET"],
        app_url=config["APP_PUBLIC_URL"],
    )
    fake.start(host="127.0.0.1", port=config["SANDBOX_PORTAL_PORT"])
    portal = fake.add_portal(domain="demo.bitrix24.test")
    portal.add_user(name="Olga Reader", admin=False, bi_access=True)
    return fake, portal


def install_with_demo_database(app, fake, portal) -> dict:
    """Install the app on the fake portal (its connectors get registered) and add the demo
    database, so the portal's BI Builder page shows data at once."""
    from ..gateway.databases import DatabaseService
    from ..services.session_tokens import TabSession
    from .demo_data import create_demo_database

    create_demo_database(SANDBOX_DATA / DEMO_DATABASE["database"])
    response = fake.install(portal)
    if response.status_code != 200:
        raise click.ClickException(f"Installing the app on the fake portal failed: {response.text[:300]}")
    fake.finish_install(portal)
    session = TabSession(member_id=portal.member_id, user_id=portal.admin.id, is_admin=True, can_edit=True)
    return DatabaseService(app.extensions["bitrix"], app.extensions["gateway"], session).add(DEMO_DATABASE)


@click.command("sandbox")
@with_appcontext
def sandbox_command():
    """Run the app and a fake Bitrix24 portal on loopback, then print the URL to open."""
    from flask_migrate import upgrade

    app = current_app._get_current_object()
    if not app.config.get("SANDBOX"):
        raise click.ClickException("The sandbox cannot be enabled in a production configuration.")
    for port in (app.config["SANDBOX_APP_PORT"], app.config["SANDBOX_PORTAL_PORT"]):
        if not _port_is_free(port):
            raise click.ClickException(
                f"Port {port} is busy. Set SANDBOX_APP_PORT / SANDBOX_PORTAL_PORT to free ports."
            )
    upgrade()
    fake, portal = start_fake_portal(app.config)
    server = make_server("127.0.0.1", app.config["SANDBOX_APP_PORT"], app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    demo = install_with_demo_database(app, fake, portal)
    click.echo(f"Portal:     {portal.page_url}?view=app   (the app's tab, as the administrator; "
               "&user=2 for a non-admin user)")
    click.echo(f"BI Builder: {portal.page_url}?view=bi&source={demo['sourceId']}   "
               "(the demo database through the app's connector)")
    click.echo(f"Open {portal.page_url}?view=app in a browser. Ctrl+C stops.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        fake.stop()
