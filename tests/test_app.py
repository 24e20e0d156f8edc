"""app.py, the production entry point, under gunicorn (2 worker processes x 4 threads), driven by the
fake portal over real HTTP: install, the tab's API through an expired token, uninstall."""
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import CLIENT_ID, CLIENT_SECRET, session_token_in

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def gunicorn_app(fake, database_url, encryption_key):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SECRET_KEY": "gunicorn-test-secret", "BITRIX_CLIENT_ID": CLIENT_ID, "BITRIX_CLIENT_SECRET": CLIENT_SECRET,
        "BITRIX_OAUTH_SERVER": fake.url, "TOKEN_ENCRYPTION_KEYS": encryption_key, "APP_PUBLIC_URL": url,
        "DATABASE_URL": database_url, "BITRIX_ALLOW_INSECURE": "1", "BITRIX_JS_SDK_URL": f"{fake.url}/bx24.js",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "app:app", "--workers", "2", "--worker-class", "gthread",
         "--threads", "4", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or too busy booting to answer
                time.sleep(0.2)
        else:
            raise AssertionError("gunicorn did not start: " + process.stderr.read(4000))
        fake.app_url = url
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_install_tab_and_uninstall_under_gunicorn(fake, portal, gunicorn_app):
    assert fake.install(portal).status_code == 200
    fake.finish_install(portal)
    fake.seed_demo(portal)
    page = fake.open_app(portal, portal.admin)
    assert page.status_code == 200
    headers = {"Authorization": f"Bearer {session_token_in(page.text)}"}

    fake.config.refresh_latency = 0.3
    fake.expire_access_tokens(portal)
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: requests.get(f"{gunicorn_app}/api/connectors", headers=headers, timeout=30),
                                range(12)))

    assert [answer.status_code for answer in answers] == [200] * 12
    assert all("Demo warehouse" in [item["title"] for item in answer.json()["result"]] for answer in answers)
    assert fake.refresh_count(portal) == 1

    assert fake.uninstall(portal).status_code == 200
    assert requests.get(f"{gunicorn_app}/api/connectors", headers=headers, timeout=30).status_code == 409
