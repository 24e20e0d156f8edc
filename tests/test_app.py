"""app.py, the production entry point, under gunicorn (2 worker processes x 4 or 8 threads), driven by
the fake portal over real HTTP: install, the tab's API through an expired token, uninstall, and a
flood of forged tab openings on one portal while another portal keeps working."""
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from bitrix_app.sandbox.fake.lifecycle import frame_request
from tests.conftest import CLIENT_ID, CLIENT_SECRET, session_token_in

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def gunicorn(fake, database_url, encryption_key, threads: int, env: dict | None = None):
    """`gunicorn app:app` with 2 gthread workers of `threads` threads; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SECRET_KEY": "gunicorn-test-secret-of-at-least-32-characters", "BITRIX_CLIENT_ID": CLIENT_ID,
        "BITRIX_CLIENT_SECRET": CLIENT_SECRET, "BITRIX_OAUTH_SERVER": fake.url, "TOKEN_ENCRYPTION_KEYS": encryption_key,
        "APP_PUBLIC_URL": url, "DATABASE_URL": database_url, "ALLOW_SQLITE": "1", "BITRIX_ALLOW_INSECURE": "1",
        "BITRIX_JS_SDK_URL": f"{fake.url}/bx24.js", **(env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "app:app", "--workers", "2", "--worker-class", "gthread",
         "--threads", str(threads), "--bind", f"127.0.0.1:{port}"],
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


@pytest.fixture
def gunicorn_app(fake, database_url, encryption_key):
    with gunicorn(fake, database_url, encryption_key, threads=4) as url:
        yield url


@pytest.fixture
def procfile_app(fake, database_url, encryption_key):
    """As the Procfile runs it: 2 workers x 8 threads, the app's own rate limit on (2/s, burst 50)."""
    with gunicorn(fake, database_url, encryption_key, threads=8,
                  env={"BITRIX_RATE_PER_SECOND": "2", "BITRIX_RATE_BURST": "50"}) as url:
        yield url


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


# --- a flood on one portal must not slow another ---------------------------------------------

FLOOD_THREADS = 40
PROMPTLY = 5.0  # seconds; generous on purpose: this proves "not stalled", speed belongs in bench/


def installed(fake, domain: str):
    portal = fake.add_portal(domain=domain)
    assert fake.install(portal).status_code == 200
    fake.finish_install(portal)
    return portal


def answers_promptly(what: str, call) -> requests.Response:
    began = time.monotonic()
    try:
        response = call()
    except requests.Timeout:
        pytest.fail(f"{what} did not answer within {PROMPTLY} s during the flood")
    assert time.monotonic() - began < PROMPTLY, what
    return response


def test_forged_openings_on_one_portal_do_not_stall_another_portal(fake, procfile_app):
    alpha, beta = installed(fake, "alpha.bitrix24.test"), installed(fake, "beta.bitrix24.test")
    beta_session = {"Authorization": f"Bearer {session_token_in(fake.open_app(beta).text)}"}
    query, form = frame_request(fake, alpha, alpha.admin)
    form["AUTH_ID"] = "garbage"  # a valid APPLICATION_TOKEN (any portal user sees it), a forged AUTH_ID
    forged_opening = f"{procfile_app}/app?{urlencode(query)}"
    stop, answers = threading.Event(), []

    def flood():
        while not stop.is_set():
            began = time.monotonic()
            try:
                response = requests.post(forged_opening, data=form, timeout=2 * PROMPTLY)
            except requests.Timeout:
                answers.append(("timeout", None, time.monotonic() - began))
                continue
            answers.append((response.status_code, response.headers.get("Retry-After"), time.monotonic() - began))

    with ThreadPoolExecutor(max_workers=FLOOD_THREADS) as pool:
        for _ in range(FLOOD_THREADS):
            pool.submit(flood)
        try:
            time.sleep(2)  # the flood is in full swing: the old code had every thread asleep by now
            listed = answers_promptly("beta's tab API", lambda: requests.get(
                f"{procfile_app}/api/connectors", headers=beta_session, timeout=PROMPTLY))
            health = answers_promptly("/healthz", lambda: requests.get(f"{procfile_app}/healthz", timeout=PROMPTLY))
            opened = answers_promptly("opening beta's tab", lambda: fake.open_app(beta))
        finally:
            stop.set()

    assert (listed.status_code, health.status_code, opened.status_code) == (200, 200, 200)
    statuses = {status for status, _, _ in answers}
    assert statuses <= {401, 429}, statuses  # forged: refused as INVALID_AUTH, or not even tried
    refused = [(retry_after, took) for status, retry_after, took in answers if status == 429]
    assert len(refused) > len(answers) / 2
    assert all(retry_after and int(retry_after) >= 1 for retry_after, _ in refused)
    assert max(took for _, _, took in answers) < PROMPTLY  # nobody was kept waiting for alpha's bucket
