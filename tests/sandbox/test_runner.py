"""`flask --app app sandbox`: the README's first command, started for real, and the CLI line it prints."""
import os
import shlex
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from dotenv import dotenv_values

from bitrix_app.sandbox.runner import env_file_text, write_private_file

ROOT = Path(__file__).resolve().parents[2]
INSTANCE = ROOT / "instance"
FLASK = str(Path(sys.executable).with_name("flask"))
PRODUCTION_ENV = ("SECRET_KEY", "BITRIX_CLIENT_ID", "BITRIX_CLIENT_SECRET", "TOKEN_ENCRYPTION_KEYS",
                  "APP_PUBLIC_URL", "DATABASE_URL", "ALLOW_SQLITE", "BITRIX_ALLOW_INSECURE", "BITRIX_PORTAL")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_env(**extra) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in PRODUCTION_ENV}
    return {**env, **extra}


class Sandbox:
    def __init__(self, app_port: int, portal_port: int):
        self.app_port, self.portal_port = app_port, portal_port
        self.env = clean_env(SANDBOX_APP_PORT=str(app_port), SANDBOX_PORTAL_PORT=str(portal_port))
        self.process = subprocess.Popen([FLASK, "--app", "app", "sandbox"], cwd=ROOT, env=self.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []

    def wait_ready(self, timeout: float = 90) -> dict[str, str]:
        """The printed `Label: value` lines, once the last one ("Ctrl+C …") is out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith("Ctrl+C"):
                return {label: value.strip() for label, _, value in
                        (printed.partition(":") for printed in self.lines if not printed.startswith("INFO"))}
        raise AssertionError("the sandbox did not start:\n" + "".join(self.lines))

    def run_dirs(self) -> list[Path]:
        return sorted(INSTANCE.glob(f"sandbox-run-{self.app_port}-*"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process.stdout.close()


@pytest.fixture
def sandbox():
    started = Sandbox(free_port(), free_port())
    yield started
    started.stop()


def run_cli(line: str) -> subprocess.CompletedProcess:
    return subprocess.run(shlex.split(line), cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=120)


def test_the_first_url_opens_the_app_and_bi_builder_shows_the_demo_data(sandbox):
    printed = sandbox.wait_ready()

    first_line_with_a_url = next(line for line in sandbox.lines if "http://" in line and not line.startswith("INFO"))
    assert first_line_with_a_url.startswith("Open:")
    first_url = first_line_with_a_url.split()[1]
    assert first_url == f"http://127.0.0.1:{sandbox.portal_port}/demo.bitrix24.test/?view=app"
    page = requests.get(first_url, timeout=10)
    assert page.status_code == 200
    assert f"http://127.0.0.1:{sandbox.app_port}/app" in page.text  # installed: the tab's form posts to our app
    app_root = requests.get(f"http://127.0.0.1:{sandbox.app_port}/", timeout=10, allow_redirects=False)
    assert app_root.status_code == 302 and app_root.headers["Location"] == first_url
    assert requests.get(f"http://127.0.0.1:{sandbox.app_port}/healthz", timeout=10).json()["status"] == "ok"
    bi = requests.get(printed["BI Builder"].split()[0], timeout=30)
    assert bi.status_code == 200 and "deals" in bi.text and "companies" in bi.text


def test_the_printed_cli_line_drives_the_running_sandbox(sandbox):
    printed = sandbox.wait_ready()
    env_file = INSTANCE / f"sandbox-{sandbox.app_port}.env"
    cli = printed["CLI"]
    assert cli.endswith(f"--app app --env-file instance/{env_file.name} portals list"), cli
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

    listed = run_cli(cli)

    assert listed.returncode == 0, listed.stderr
    assert "demo.bitrix24.test" in listed.stdout and "active" in listed.stdout
    # The same settings reach the fake portal over loopback: its OAuth server, then its REST API
    # (BITRIX_PORTAL in the env file names the demo portal).
    refreshed = run_cli(cli.replace("portals list", "portals refresh --all --older-than 0"))
    assert refreshed.returncode == 0, refreshed.stderr + refreshed.stdout
    connectors = run_cli(cli.replace("portals list", "connectors list"))
    assert connectors.returncode == 0, connectors.stderr
    assert "/gateway/" in connectors.stdout

    sandbox.stop()
    assert not env_file.exists() and sandbox.run_dirs() == []  # it cleaned up after itself, and only that


def test_a_second_sandbox_on_the_same_ports_refuses_and_leaves_the_first_intact(sandbox):
    printed = sandbox.wait_ready()
    [run_dir] = sandbox.run_dirs()
    database = run_dir / "app.db"
    before = database.stat().st_ino

    second = subprocess.run([FLASK, "--app", "app", "sandbox"], cwd=ROOT, env=sandbox.env,
                            capture_output=True, text=True, timeout=120)

    assert second.returncode == 1
    assert second.stderr.strip().count("\n") == 0, second.stderr  # one line
    assert f"Port {sandbox.app_port}" in second.stderr and "in use" in second.stderr
    assert "Traceback" not in second.stderr
    assert sandbox.run_dirs() == [run_dir] and database.stat().st_ino == before
    listed = run_cli(printed["CLI"])
    assert listed.returncode == 0 and "demo.bitrix24.test" in listed.stdout, listed.stderr
    assert requests.get(f"http://127.0.0.1:{sandbox.app_port}/healthz", timeout=10).json()["status"] == "ok"


def test_sandbox_help_has_no_side_effects():
    INSTANCE.mkdir(exist_ok=True)
    before = sorted(INSTANCE.glob("sandbox*"))

    result = subprocess.run([FLASK, "--app", "app", "sandbox", "--help"], cwd=ROOT, env=clean_env(),
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "sandbox.env" in result.stdout
    assert sorted(INSTANCE.glob("sandbox*")) == before


def test_a_bad_port_setting_is_one_line():
    result = subprocess.run([FLASK, "--app", "app", "sandbox"], cwd=ROOT, env=clean_env(SANDBOX_APP_PORT="50o0"),
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "Error: SANDBOX_APP_PORT must be a port number (1-65535), not '50o0'."


def test_the_env_file_gives_the_cli_every_value_as_it_is(tmp_path):
    values = {"DATABASE_URL": "sqlite:////srv/$HOME/sandbox.db", "SECRET_KEY": 'a"b\\c', "NAME": "it's"}
    path = tmp_path / "sandbox.env"
    write_private_file(path, env_file_text(values))
    assert dotenv_values(path) == values
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_planted_link_at_the_temporary_name_is_not_written_through(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("untouched")
    (tmp_path / f".sandbox.env.{os.getpid()}").symlink_to(target)
    write_private_file(tmp_path / "sandbox.env", "SECRET_KEY='x'\n")
    assert target.read_text() == "untouched"
    assert (tmp_path / "sandbox.env").read_text() == "SECRET_KEY='x'\n"
