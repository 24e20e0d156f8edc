"""The app factory, /healthz, error pages and the `flask db upgrade` deployment step."""
import secrets
import subprocess
import sys
from pathlib import Path

from bitrix_app.services.crypto import TokenCipher

ROOT = Path(__file__).resolve().parent.parent


def test_healthz_reports_database_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_unknown_api_path_is_a_json_404(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"] == "NOT_FOUND"


def test_unknown_page_is_an_html_404(client):
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert b"NOT_FOUND" in response.data


def test_flask_db_upgrade_creates_the_schema(tmp_path):
    database = tmp_path / "fresh.db"
    env = {
        "PATH": str(Path(sys.executable).parent), "SECRET_KEY": secrets.token_urlsafe(32), "BITRIX_CLIENT_ID": "id",
        "BITRIX_CLIENT_SECRET": "secret", "TOKEN_ENCRYPTION_KEYS": TokenCipher.generate_key(),
        "APP_PUBLIC_URL": "https://app.example.com", "DATABASE_URL": f"sqlite:///{database}", "ALLOW_SQLITE": "1",
    }
    flask = str(Path(sys.executable).with_name("flask"))
    result = subprocess.run([flask, "--app", "app", "db", "upgrade"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    import sqlite3

    tables = {row[0] for row in sqlite3.connect(database).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"portals", "portal_tokens", "portal_history", "alembic_version"} <= tables


def pinned_requirements() -> dict[str, str]:
    import re

    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def test_libraries_the_app_imports_directly_are_pinned_to_the_installed_versions():
    from importlib.metadata import version

    pins = pinned_requirements()
    for name in ("werkzeug", "jinja2", "itsdangerous", "markupsafe", "urllib3"):
        assert name in pins, f"{name} is used directly by the app but not pinned in requirements.txt"
    for name, pinned in pins.items():
        assert version(name) == pinned, f"requirements.txt pins {name}=={pinned}, but {version(name)} is installed"
