"""Configuration classes, read from the environment (see the README's configuration table).

Plain Python: the CLI, jobs and `BitrixApp.from_env()` read the same classes.
"""
from __future__ import annotations

import os
from pathlib import Path

INSTANCE_PATH = Path(__file__).resolve().parent.parent / "instance"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _keys(value: str | None) -> list[str]:
    return [key.strip() for key in (value or "").split(",") if key.strip()]


def default_database_url() -> str:
    """A SQLite file in the project's instance folder, whatever the current directory."""
    INSTANCE_PATH.mkdir(exist_ok=True)
    return f"sqlite:///{INSTANCE_PATH / 'bitrix_app.db'}"


class ConfigError(RuntimeError):
    """The configuration cannot run safely; the message says what to set."""


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY")
    BITRIX_CLIENT_ID = os.environ.get("BITRIX_CLIENT_ID")
    BITRIX_CLIENT_SECRET = os.environ.get("BITRIX_CLIENT_SECRET")
    BITRIX_OAUTH_SERVER = os.environ.get("BITRIX_OAUTH_SERVER", "https://oauth.bitrix.info").rstrip("/")
    # GET is what the docs document; POST (form body) keeps secrets out of URLs where supported.
    BITRIX_TOKEN_METHOD = os.environ.get("BITRIX_TOKEN_METHOD", "GET").upper()
    BITRIX_ALLOW_INSECURE = _flag("BITRIX_ALLOW_INSECURE")
    # Where the tab loads Bitrix24's JS library from; the sandbox points it at the fake portal.
    BITRIX_JS_SDK_URL = os.environ.get("BITRIX_JS_SDK_URL", "//api.bitrix24.com/api/v1/")
    APP_PUBLIC_URL = (os.environ.get("APP_PUBLIC_URL") or "").rstrip("/")
    TOKEN_ENCRYPTION_KEYS = _keys(os.environ.get("TOKEN_ENCRYPTION_KEYS"))
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL")  # default set by create_app
    REDIS_URL = os.environ.get("REDIS_URL")
    # Client-side leaky bucket per portal (Bitrix24 default plans: 2/s, burst 50; Enterprise 5/s, 250),
    # shared through the database, or Redis when REDIS_URL is set. A rate of 0 turns pacing off.
    BITRIX_RATE_PER_SECOND = float(os.environ.get("BITRIX_RATE_PER_SECOND", "2"))
    BITRIX_RATE_BURST = int(os.environ.get("BITRIX_RATE_BURST", "50"))
    BITRIX_ENTERPRISE_RATE_PER_SECOND = float(os.environ.get("BITRIX_ENTERPRISE_RATE_PER_SECOND", "5"))
    BITRIX_ENTERPRISE_RATE_BURST = int(os.environ.get("BITRIX_ENTERPRISE_RATE_BURST", "250"))
    # Comma-separated member ids or domains of Enterprise portals (paced at the Enterprise rate).
    BITRIX_ENTERPRISE_PORTALS = _keys(os.environ.get("BITRIX_ENTERPRISE_PORTALS"))
    SESSION_TOKEN_TTL = int(os.environ.get("SESSION_TOKEN_TTL", "3600"))
    # The connector gateway (README: "The connector gateway").
    GATEWAY_KINDS = os.environ.get("GATEWAY_KINDS", "postgresql,mysql")
    GATEWAY_ALLOWED_NETWORKS = os.environ.get("GATEWAY_ALLOWED_NETWORKS", "")
    GATEWAY_MAX_ROWS = int(os.environ.get("GATEWAY_MAX_ROWS", "1000000"))
    GATEWAY_CONNECT_TIMEOUT = float(os.environ.get("GATEWAY_CONNECT_TIMEOUT", "5"))
    GATEWAY_STATEMENT_TIMEOUT = float(os.environ.get("GATEWAY_STATEMENT_TIMEOUT", "50"))
    GATEWAY_POOL_SIZE = int(os.environ.get("GATEWAY_POOL_SIZE", "2"))
    GATEWAY_SQLITE_DIR = os.environ.get("GATEWAY_SQLITE_DIR")
    GATEWAY_CACHE_SECONDS = float(os.environ.get("GATEWAY_CACHE_SECONDS", "300"))
    SANDBOX = False
    TESTING = False

    REQUIRED = ("SECRET_KEY", "BITRIX_CLIENT_ID", "BITRIX_CLIENT_SECRET", "TOKEN_ENCRYPTION_KEYS", "APP_PUBLIC_URL")

    @classmethod
    def validate(cls, config: dict) -> None:
        missing = [name for name in cls.REQUIRED if not config.get(name)]
        if missing:
            raise ConfigError(
                "Missing configuration: " + ", ".join(missing)
                + ". Set these environment variables (see the README); "
                "for a local try-out run `flask --app app sandbox` instead."
            )
        if config.get("SANDBOX") and not config.get("TESTING"):
            raise ConfigError("The sandbox cannot be enabled in a production configuration.")
        if config["BITRIX_TOKEN_METHOD"] not in {"GET", "POST"}:
            raise ConfigError("BITRIX_TOKEN_METHOD must be GET or POST.")
        validate_gateway(config)


def validate_gateway(config: dict) -> None:
    from .gateway.settings import GatewaySettings

    try:
        settings = GatewaySettings.from_config(config)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if "sqlite" in settings.kinds and not (settings.sqlite_dir or config.get("SANDBOX")):
        raise ConfigError("GATEWAY_KINDS includes sqlite: set GATEWAY_SQLITE_DIR to the one directory "
                          "whose SQLite files the gateway may open.")
    if settings.max_rows < 1 or settings.statement_timeout <= 0 or settings.connect_timeout <= 0:
        raise ConfigError("GATEWAY_MAX_ROWS, GATEWAY_STATEMENT_TIMEOUT and GATEWAY_CONNECT_TIMEOUT must be positive.")


class ProductionConfig(Config):
    pass


class SandboxConfig(Config):
    """Local demo against the fake Bitrix24: the sandbox command fills in URLs and credentials."""

    SANDBOX = True
    BITRIX_ALLOW_INSECURE = True

    @classmethod
    def validate(cls, config: dict) -> None:
        missing = [name for name in cls.REQUIRED if not config.get(name)]
        if missing:
            raise ConfigError("Sandbox configuration incomplete: " + ", ".join(missing))
        validate_gateway(config)


class TestConfig(SandboxConfig):
    TESTING = True
