"""Configuration: production refuses to start half-configured; the sandbox refuses production."""
import subprocess
import sys
from pathlib import Path

import pytest

from bitrix_app import create_app
from bitrix_app.config import ConfigError, ProductionConfig

ROOT = Path(__file__).resolve().parent.parent
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
