"""`flask --app app sandbox`: the README's first command, started for real."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = ("SECRET_KEY", "BITRIX_CLIENT_ID", "BITRIX_CLIENT_SECRET", "TOKEN_ENCRYPTION_KEYS",
                  "APP_PUBLIC_URL", "DATABASE_URL")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sandbox_serves_the_portal_and_the_app(tmp_path):
    app_port, portal_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if key not in PRODUCTION_ENV}
    env.update(SANDBOX_APP_PORT=str(app_port), SANDBOX_PORTAL_PORT=str(portal_port))
    flask = str(Path(sys.executable).with_name("flask"))
    process = subprocess.Popen([flask, "--app", "app", "sandbox"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if line.startswith("Open "):
                break
        output = "".join(lines)
        assert f"http://127.0.0.1:{portal_port}/demo.bitrix24.test/" in output, output

        assert requests.get(f"http://127.0.0.1:{app_port}/healthz", timeout=10).json()["status"] == "ok"
        page = requests.get(f"http://127.0.0.1:{portal_port}/demo.bitrix24.test/?view=app", timeout=10)
        assert page.status_code == 200
        assert f"http://127.0.0.1:{app_port}/app" in page.text  # installed: the tab's form posts to our app
        bi_url = next(line.split()[2] for line in lines if line.startswith("BI Builder:"))
        bi = requests.get(bi_url, timeout=30)
        assert bi.status_code == 200 and "deals" in bi.text and "companies" in bi.text
    finally:
        process.terminate()
        process.wait(timeout=30)
