"""Shared fixtures: a fake Bitrix24 and the app, both served over real HTTP on loopback.

The database comes from TEST_DATABASE_URL (default: a SQLite file in a temp folder); CI runs
the suite once with SQLite and once with PostgreSQL.
"""
from __future__ import annotations

import os
import threading
from dataclasses import replace

import pytest
from sqlalchemy import create_engine, text
from werkzeug.serving import make_server

# Production entry points that tests start (gunicorn in test_app.py, scripts in test_automation.py)
# run on the SQLite test database unless TEST_DATABASE_URL names another; production refuses SQLite
# without this opt-in. Set before bitrix_app.config reads the environment.
if (os.environ.get("TEST_DATABASE_URL") or "sqlite").startswith("sqlite"):
    os.environ.setdefault("ALLOW_SQLITE", "1")

from bitrix_app import create_app  # noqa: E402
from bitrix_app.config import TestConfig  # noqa: E402
from bitrix_app.models import Base  # noqa: E402
from bitrix_app.sandbox.fake import FakeBitrix24  # noqa: E402
from bitrix_app.services.crypto import TokenCipher  # noqa: E402

CLIENT_ID = "app.test.client"
CLIENT_SECRET = "test-client-secret-value"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    if url.startswith("postgresql"):
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def encryption_key() -> str:
    return TokenCipher.generate_key()


class LiveServer:
    """A WSGI app served by a threaded werkzeug server on a free loopback port."""

    def __init__(self, wsgi_app):
        self.server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()


@pytest.fixture(scope="session")
def fake_server():
    fake = FakeBitrix24(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, app_url="http://127.0.0.1:1")
    fake.start(host="127.0.0.1", port=0)
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def app_config(database_url, encryption_key, fake_server, gateway_sqlite_dir) -> dict:
    return {
        "SECRET_KEY": "test-secret-key-of-at-least-32-characters",  # scripts validate it as production does
        "BITRIX_CLIENT_ID": CLIENT_ID,
        "BITRIX_CLIENT_SECRET": CLIENT_SECRET,
        "BITRIX_OAUTH_SERVER": fake_server.url,
        "BITRIX_JS_SDK_URL": f"{fake_server.url}/bx24.js",
        "TOKEN_ENCRYPTION_KEYS": [encryption_key],
        "SQLALCHEMY_DATABASE_URI": database_url,
        "APP_PUBLIC_URL": "http://127.0.0.1:1",  # replaced once the live server has its port
        "GATEWAY_KINDS": "postgresql,mysql,sqlite",
        "GATEWAY_SQLITE_DIR": str(gateway_sqlite_dir),
        "GATEWAY_ALLOWED_NETWORKS": "127.0.0.1/32",  # the test databases; 127.0.0.2 stays refused
        "GATEWAY_CACHE_SECONDS": 0,  # tests change schemas under the app; tests/gateway enable it
    }


@pytest.fixture(scope="session")
def live_app(app_config, fake_server):
    """The app, migrated with Alembic, served over HTTP; the fake portal calls it there."""
    from flask_migrate import upgrade

    app = create_app(TestConfig, app_config)
    with app.app_context():
        upgrade()
    server = LiveServer(app)
    app.config["APP_PUBLIC_URL"] = server.url
    bitrix = app.extensions["bitrix"]
    bitrix.settings = replace(bitrix.settings, public_url=server.url)
    gateway = app.extensions["gateway"]
    gateway.settings = replace(gateway.settings, public_url=server.url)
    fake_server.app_url = server.url
    app.live_url = server.url
    yield app
    server.stop()


@pytest.fixture(scope="session")
def gateway_sqlite_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gateway-sqlite")


@pytest.fixture
def app(live_app):
    yield live_app
    live_app.extensions["gateway"].engines.dispose_all()
    with live_app.extensions["bitrix"].session_factory() as session, session.begin():
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())


@pytest.fixture
def fake(fake_server, app):
    fake_server.reset()
    fake_server.config.rate_limit = False  # tests that need the limit switch it on
    fake_server.app_url = app.live_url
    yield fake_server
    fake_server.reset()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def bitrix(app):
    return app.extensions["bitrix"]


@pytest.fixture
def portal(fake):
    return fake.add_portal(domain="alpha.bitrix24.test")


@pytest.fixture
def installed_portal(fake, portal):
    """A portal that installed the app through the installer page and finished installation."""
    response = fake.install(portal)
    assert response.status_code == 200, response.text
    fake.finish_install(portal)
    return portal


# --- The embedded tab and its JSON API (issue 3) -------------------------------------------------

class TabApi:
    """The tab's JSON API as one user sees it, as tab.js sends it: every request carries that user's
    session token, and every change also a fresh Bitrix24 authorization (`fresh_auth`, which
    stands for BX24.getAuth(); None: a page without BX24.js)."""

    def __init__(self, client, session_token: str, fresh_auth=None):
        self.client = client
        self.fresh_auth = fresh_auth
        self.use(session_token)

    def use(self, session_token: str) -> None:
        self.session_token = session_token
        self.headers = {"Authorization": f"Bearer {session_token}"}

    def write_headers(self) -> dict:
        return {**self.headers, "X-Bitrix24-Auth": self.fresh_auth()} if self.fresh_auth else self.headers

    def get(self, path: str):
        return self.client.get("/api" + path, headers=self.headers)

    def post(self, path: str, json=None, **kwargs):
        return self.client.post("/api" + path, json=json, headers=self.write_headers(), **kwargs)

    def put(self, path: str, json=None, **kwargs):
        return self.client.put("/api" + path, json=json, headers=self.write_headers(), **kwargs)

    def patch(self, path: str, json=None, **kwargs):
        return self.client.patch("/api" + path, json=json, headers=self.write_headers(), **kwargs)

    def delete(self, path: str, **kwargs):
        return self.client.delete("/api" + path, headers=self.write_headers(), **kwargs)

    def renew(self):
        """What tab.js does before the session expires: POST /api/session/renew, then use the new token."""
        response = self.post("/session/renew")
        if response.status_code == 200:
            self.use(response.get_json()["result"]["token"])
        return response


def bx24_auth(fake, portal, user=None):
    """BX24.refreshAuth() in the fake portal's page: a fresh access token of `user`, over HTTP."""
    import requests

    url = f"{fake.url}/_fake/{portal.domain}/auth?user={portal.user(user).id}"
    return lambda: requests.post(url, timeout=10).json()["AUTH_ID"]


def session_token_in(page_html: str) -> str:
    import re

    match = re.search(r'<meta name="session-token" content="([^"]+)"', page_html)
    assert match, "the tab page has no session-token meta tag"
    return match.group(1)


@pytest.fixture
def open_tab(fake, client):
    """Open the app's tab in the fake portal as `user` (default: the admin) → a TabApi."""

    def open_(portal, user=None, lang="en") -> TabApi:
        response = fake.open_app(portal, user, lang=lang)
        assert response.status_code == 200, response.text
        return TabApi(client, session_token_in(response.text), bx24_auth(fake, portal, user))

    return open_


def not_gateway(connectors: list[dict]) -> list[dict]:
    """Connectors other than the ones the gateway registers at install."""
    return [item for item in connectors if "/gateway/" not in str(item.get("urlCheck"))]


@pytest.fixture
def demo_portal(fake, installed_portal):
    """An installed portal with the sandbox's demo connector and its two sources."""
    installed_portal.demo = fake.seed_demo(installed_portal)
    return installed_portal


@pytest.fixture
def read_session(app):
    """Decode a session token the way the API does (→ TabSession)."""
    from bitrix_app.api import session_tokens

    def read(token: str):
        with app.app_context():
            return session_tokens().read(token)

    return read
