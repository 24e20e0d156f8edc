"""Configuration: production refuses to start half-configured; the sandbox refuses production."""
import subprocess
import sys
from pathlib import Path

import pytest

from bitrix_app import create_app
from bitrix_app.config import ConfigError, ProductionConfig

ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = "k3V9-pQx7_Lm2Zr8Tb4Wn6Yc1Hd5Jf0G"
PRODUCTION_ENV = ("SECRET_KEY", "BITRIX_CLIENT_ID", "BITRIX_CLIENT_SECRET", "TOKEN_ENCRYPTION_KEYS",
                  "APP_PUBLIC_URL", "DATABASE_URL")


def test_production_without_credentials_stops_with_a_clear_message():
    with pytest.raises(ConfigError) as excinfo:
        create_app(ProductionConfig, {"SECRET_KEY": None, "BITRIX_CLIENT_SECRET": None})
    message = str(excinfo.value)
    assert "BITRIX_CLIENT_SECRET" in message and "SECRET_KEY" in message


def test_production_cannot_enable_the_sandbox(app_config):
    with pytest.raises(ConfigError, match="sandbox"):
        create_app(ProductionConfig, {**app_config, "SANDBOX": True})


def clean_env(**extra):
    import os

    env = {key: value for key, value in os.environ.items() if key not in PRODUCTION_ENV}
    env.update(extra)
    return env


def test_gunicorn_entry_point_refuses_to_start_without_configuration():
    result = subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Missing configuration" in result.stderr


def test_sandbox_command_refuses_a_production_configuration():
    flask = str(Path(sys.executable).with_name("flask"))
    result = subprocess.run([flask, "--app", "app", "sandbox"], cwd=ROOT,
                            env=clean_env(BITRIX_CLIENT_SECRET="real-secret"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "cannot be enabled in a production configuration" in result.stderr
    assert "real-secret" not in result.stderr + result.stdout


def test_default_database_is_in_the_project_instance_folder_whatever_the_cwd(tmp_path, monkeypatch):
    from bitrix_app.config import default_database_url

    monkeypatch.chdir(tmp_path)
    assert default_database_url() == f"sqlite:///{ROOT / 'instance' / 'bitrix_app.db'}"


# --- production refuses unsafe settings (issues 8, 11, 13) ---------------------------------------

def production_config(**overrides) -> dict:
    """A complete, valid production configuration as `validate` sees it, with `overrides`."""
    from bitrix_app.services.crypto import TokenCipher

    config = {name: getattr(ProductionConfig, name) for name in dir(ProductionConfig) if name.isupper()}
    config.update(
        SECRET_KEY=STRONG_KEY, BITRIX_CLIENT_ID="app.example", BITRIX_CLIENT_SECRET="client-secret",
        TOKEN_ENCRYPTION_KEYS=[TokenCipher.generate_key()], APP_PUBLIC_URL="https://bi.example.com",
        BITRIX_OAUTH_SERVER="https://oauth.bitrix.info", BITRIX_ALLOW_INSECURE=False, BITRIX_TOKEN_METHOD="GET",
        SQLALCHEMY_DATABASE_URI="postgresql+psycopg://bitrix@db.example.com/bitrix", ALLOW_SQLITE=False,
        SESSION_TOKEN_TTL=3600, GATEWAY_KINDS="postgresql,mysql", GATEWAY_SQLITE_DIR=None, SANDBOX=False,
        TESTING=False,
    )
    config.update(overrides)
    return config


def refusal(**overrides) -> str:
    with pytest.raises(ConfigError) as excinfo:
        ProductionConfig.validate(production_config(**overrides))
    return str(excinfo.value)


def test_a_complete_production_configuration_is_accepted():
    ProductionConfig.validate(production_config())


@pytest.mark.parametrize("url", ["sqlite:////srv/bitrix.db", "sqlite+pysqlite:///relative.db"])
def test_production_refuses_sqlite_and_says_why(url):
    message = refusal(SQLALCHEMY_DATABASE_URI=url)
    assert "DATABASE_URL is SQLite" in message and "write lock" in message and "ALLOW_SQLITE=1" in message
    ProductionConfig.validate(production_config(SQLALCHEMY_DATABASE_URI=url, ALLOW_SQLITE=True))


def test_production_without_database_url_refuses_the_default_sqlite_file():
    with pytest.raises(ConfigError, match="DATABASE_URL is SQLite"):
        create_app(ProductionConfig, {**production_config(SQLALCHEMY_DATABASE_URI=None)})


def test_sandbox_and_test_configurations_may_use_sqlite():
    from bitrix_app.config import SandboxConfig, TestConfig

    for config_class in (SandboxConfig, TestConfig):
        config_class.validate(production_config(SQLALCHEMY_DATABASE_URI="sqlite:///x.db", ALLOW_SQLITE=False,
                                                BITRIX_ALLOW_INSECURE=True, SANDBOX=True))


def test_scripts_refuse_sqlite_through_the_same_validation(monkeypatch, tmp_path):
    from bitrix_app.config import Config
    from bitrix_app.services.bitrix import Bitrix

    for name, value in production_config(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'jobs.db'}").items():
        monkeypatch.setattr(Config, name, value)
    with pytest.raises(ConfigError, match="ALLOW_SQLITE"):
        Bitrix.from_env()
    monkeypatch.setattr(Config, "ALLOW_SQLITE", True)
    assert Bitrix.from_env().settings.client_id == "app.example"


@pytest.mark.parametrize("overrides, setting", [
    ({"SECRET_KEY": "Qz7"}, "SECRET_KEY"),
    ({"SECRET_KEY": "Qz7" * 10 + "Q"}, "SECRET_KEY"),  # 31 characters
    ({"SECRET_KEY": STRONG_KEY + ",Qz7short"}, "SECRET_KEY"),
    ({"SECRET_KEY": " , "}, "SECRET_KEY"),  # a list with no key in it
    ({"SECRET_KEY": "s" * 40}, "SECRET_KEY"),  # long, but one symbol
    ({"SECRET_KEY": "password" * 5}, "SECRET_KEY"),  # a word repeated
    ({"APP_PUBLIC_URL": "http://bi.example.com"}, "APP_PUBLIC_URL"),
    ({"BITRIX_OAUTH_SERVER": "http://oauth.bitrix.info"}, "BITRIX_OAUTH_SERVER"),
    ({"SESSION_TOKEN_TTL": 10**9}, "SESSION_TOKEN_TTL"),
    ({"SESSION_TOKEN_TTL": 59}, "SESSION_TOKEN_TTL"),
    ({"SESSION_TOKEN_TTL": 3601}, "SESSION_TOKEN_TTL"),
    ({"SESSION_TOKEN_TTL": "1e9"}, "SESSION_TOKEN_TTL"),
    ({"VERIFY_RATE_PER_MINUTE": -1}, "VERIFY_RATE_PER_MINUTE"),
])
def test_production_refuses_weak_settings_with_one_line_naming_the_setting(overrides, setting):
    message = refusal(**overrides)
    assert message.startswith(setting) and "\n" not in message, message
    if "SECRET_KEY" in overrides:
        assert overrides["SECRET_KEY"] not in message  # never echo a secret


@pytest.mark.parametrize("overrides", [
    {"SECRET_KEY": STRONG_KEY + "," + STRONG_KEY[::-1]},  # a list of keys, each strong enough
    {"SESSION_TOKEN_TTL": 60}, {"SESSION_TOKEN_TTL": 3600},
    {"APP_PUBLIC_URL": "http://127.0.0.1:5000", "BITRIX_OAUTH_SERVER": "http://127.0.0.1:5001",
     "BITRIX_ALLOW_INSECURE": True},
])
def test_production_accepts_sound_settings(overrides):
    ProductionConfig.validate(production_config(**overrides))


def test_secret_key_may_list_several_keys_the_first_signs():
    from bitrix_app.config import secret_keys

    assert secret_keys({"SECRET_KEY": " new-key-first , old-key-second ,"}) == ["new-key-first", "old-key-second"]
    assert secret_keys({"SECRET_KEY": None}) == []


def test_session_tokens_live_minutes_by_default():
    from bitrix_app.config import Config

    assert Config.SESSION_TOKEN_TTL == 600  # the page renews it; 60..3600 allowed


def test_every_problem_gets_its_own_line():
    message = refusal(SECRET_KEY="a", APP_PUBLIC_URL="http://bi.example.com", SESSION_TOKEN_TTL=10**9,
                      SQLALCHEMY_DATABASE_URI="sqlite:///x.db")
    assert [line.split()[0] for line in message.splitlines()] == [
        "SECRET_KEY", "SESSION_TOKEN_TTL", "APP_PUBLIC_URL", "DATABASE_URL"]


@pytest.mark.parametrize("server, reason", [
    ("https://127.0.0.1", "loopback"),
    ("https://169.254.169.254", "cloud metadata"),
    ("https://10.20.30.40:8443", "private"),
    ("https://[::1]", "loopback"),
    ("https://127.1", "loopback"),  # a short form the resolver would turn into 127.0.0.1
    ("https://localhost", "loopback"),
])
def test_production_refuses_an_oauth_server_on_a_non_public_address(server, reason):
    message = refusal(BITRIX_OAUTH_SERVER=server)
    assert message.startswith("BITRIX_OAUTH_SERVER") and reason in message
    ProductionConfig.validate(production_config(BITRIX_OAUTH_SERVER=server, BITRIX_ALLOW_INSECURE=True))


# --- app.py: one line per problem, never a traceback; --help without a configuration -------------

def bare_env(**extra) -> dict:
    """What `env -i PATH=$PATH HOME=$HOME` leaves."""
    import os

    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), **extra}


def test_a_configuration_error_is_one_line_per_problem_and_no_traceback():
    from bitrix_app.services.crypto import TokenCipher

    env = bare_env(SECRET_KEY="a", BITRIX_CLIENT_ID="id", BITRIX_CLIENT_SECRET="real-secret",
                   TOKEN_ENCRYPTION_KEYS=TokenCipher.generate_key(), APP_PUBLIC_URL="http://bi.example.com",
                   BITRIX_OAUTH_SERVER="http://oauth.bitrix.info", SESSION_TOKEN_TTL="1e9")
    result = subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    lines = result.stderr.splitlines()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert all(line.startswith("Configuration error: ") for line in lines), result.stderr
    named = [line.removeprefix("Configuration error: ").split()[0] for line in lines]
    assert named == ["SESSION_TOKEN_TTL", "SECRET_KEY", "APP_PUBLIC_URL", "BITRIX_OAUTH_SERVER", "DATABASE_URL"]
    assert "real-secret" not in result.stderr


def test_help_lists_the_commands_without_any_configuration():
    flask = str(Path(sys.executable).with_name("flask"))
    result = subprocess.run([flask, "--app", "app", "--help"], cwd=ROOT, env=bare_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for command in ("portals", "connectors", "sources", "databases", "plan", "sandbox", "db"):
        assert f"\n  {command} " in result.stdout, result.stdout
    portals = subprocess.run([flask, "--app", "app", "portals", "--help"], cwd=ROOT, env=bare_env(),
                             capture_output=True, text=True, timeout=60)
    assert portals.returncode == 0 and "rotate-keys" in portals.stdout


def test_a_command_without_configuration_stops_with_one_line():
    flask = str(Path(sys.executable).with_name("flask"))
    result = subprocess.run([flask, "--app", "app", "portals", "list"], cwd=ROOT, env=bare_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("Configuration error: Missing configuration: SECRET_KEY")
    assert len(result.stderr.splitlines()) == 1, result.stderr
