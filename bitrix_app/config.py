"""Configuration classes, read from the environment (see the README's configuration table).

Plain Python: the CLI, jobs and `BitrixApp.from_env()` read the same classes.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

INSTANCE_PATH = Path(__file__).resolve().parent.parent / "instance"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _keys(value: str | None) -> list[str]:
    return [key.strip() for key in (value or "").split(",") if key.strip()]


NUMBER_SETTINGS: dict[str, type] = {}  # filled by _number; `validate` checks each holds a number


def _number(name: str, default: str, kind: type = int):
    """The variable as a number; its raw text when it is not one, so that `validate` can name it in
    one line (raising here would be a traceback at import)."""
    NUMBER_SETTINGS[name] = kind
    raw = os.environ.get(name, default)
    try:
        return kind(raw)
    except ValueError:
        return raw


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
    ALLOW_SQLITE = _flag("ALLOW_SQLITE")
    REDIS_URL = os.environ.get("REDIS_URL")
    # Client-side leaky bucket per portal (Bitrix24 default plans: 2/s, burst 50; Enterprise 5/s, 250),
    # shared through the database, or Redis when REDIS_URL is set. A rate of 0 turns pacing off.
    BITRIX_RATE_PER_SECOND = _number("BITRIX_RATE_PER_SECOND", "2", float)
    BITRIX_RATE_BURST = _number("BITRIX_RATE_BURST", "50")
    BITRIX_ENTERPRISE_RATE_PER_SECOND = _number("BITRIX_ENTERPRISE_RATE_PER_SECOND", "5", float)
    BITRIX_ENTERPRISE_RATE_BURST = _number("BITRIX_ENTERPRISE_RATE_BURST", "250")
    # Comma-separated member ids or domains of Enterprise portals (paced at the Enterprise rate).
    BITRIX_ENTERPRISE_PORTALS = _keys(os.environ.get("BITRIX_ENTERPRISE_PORTALS"))
    # Admission control: the longest a request waits for its portal's bucket before it is refused
    # (429/503 with Retry-After): web requests briefly, CLI runs, plans and jobs longer.
    BITRIX_WEB_MAX_WAIT = _number("BITRIX_WEB_MAX_WAIT", "3", float)
    BITRIX_JOB_MAX_WAIT = _number("BITRIX_JOB_MAX_WAIT", "120", float)
    # Budgets for tab openings, whose AUTH_ID is not verified yet: per portal, and per portal and
    # client address. They never wait; a rate of 0 turns a budget off.
    BITRIX_UNVERIFIED_RATE_PER_SECOND = _number("BITRIX_UNVERIFIED_RATE_PER_SECOND", "1", float)
    BITRIX_UNVERIFIED_BURST = _number("BITRIX_UNVERIFIED_BURST", "30")
    BITRIX_UNVERIFIED_ADDRESS_RATE_PER_SECOND = _number("BITRIX_UNVERIFIED_ADDRESS_RATE_PER_SECOND", "0.5", float)
    BITRIX_UNVERIFIED_ADDRESS_BURST = _number("BITRIX_UNVERIFIED_ADDRESS_BURST", "10")
    SESSION_TOKEN_TTL = _number("SESSION_TOKEN_TTL", "600")
    # Per client address: /install and /events make the app verify an authorization with Bitrix24.
    VERIFY_RATE_PER_MINUTE = _number("VERIFY_RATE_PER_MINUTE", "60", float)
    # The connector gateway (README: "The connector gateway").
    GATEWAY_KINDS = os.environ.get("GATEWAY_KINDS", "postgresql,mysql")
    GATEWAY_ALLOWED_NETWORKS = os.environ.get("GATEWAY_ALLOWED_NETWORKS", "")
    GATEWAY_MAX_ROWS = _number("GATEWAY_MAX_ROWS", "1000000")
    GATEWAY_CONNECT_TIMEOUT = _number("GATEWAY_CONNECT_TIMEOUT", "5", float)
    GATEWAY_STATEMENT_TIMEOUT = _number("GATEWAY_STATEMENT_TIMEOUT", "50", float)
    GATEWAY_POOL_SIZE = _number("GATEWAY_POOL_SIZE", "2")
    GATEWAY_SQLITE_DIR = os.environ.get("GATEWAY_SQLITE_DIR")
    GATEWAY_CACHE_SECONDS = _number("GATEWAY_CACHE_SECONDS", "300", float)
    SANDBOX = False
    TESTING = False

    REQUIRED = ("SECRET_KEY", "BITRIX_CLIENT_ID", "BITRIX_CLIENT_SECRET", "TOKEN_ENCRYPTION_KEYS", "APP_PUBLIC_URL")

    @classmethod
    def validate(cls, config: dict) -> None:
        """Refuse to run unsafely. A ConfigError carries one line per problem."""
        missing = [name for name in cls.REQUIRED if not config.get(name)]
        if missing:
            raise ConfigError(
                "Missing configuration: " + ", ".join(missing)
                + ". Set these environment variables (see the README); "
                "for a local try-out run `flask --app app sandbox` instead."
            )
        refuse(number_problems(config) + production_problems(config))
        validate_gateway(config)


MIN_SECRET_KEY_LENGTH = 32
MIN_SECRET_KEY_SYMBOLS = 10  # a long key of few symbols ("aaaa…", "abcabc…") is still guessable
SESSION_TOKEN_TTL_RANGE = (60, 3600)


def refuse(problems: list[str]) -> None:
    if problems:
        raise ConfigError("\n".join(problems))


def number_problems(config: dict) -> list[str]:
    problems = []
    for name, kind in NUMBER_SETTINGS.items():
        value, accepted = config.get(name), (int,) if kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, accepted):
            problems.append(f"{name} must be {'a whole number' if kind is int else 'a number'}, not {value!r}.")
    if not problems and config["VERIFY_RATE_PER_MINUTE"] < 0:
        problems.append("VERIFY_RATE_PER_MINUTE must be 0 (no limit) or more.")
    return problems


def production_problems(config: dict) -> list[str]:
    problems = []
    if config.get("SANDBOX") and not config.get("TESTING"):
        problems.append("The sandbox cannot be enabled in a production configuration.")
    if config["BITRIX_TOKEN_METHOD"] not in {"GET", "POST"}:
        problems.append("BITRIX_TOKEN_METHOD must be GET or POST.")
    return (problems + secret_key_problems(config) + session_ttl_problems(config) + endpoint_problems(config)
            + database_problems(config))


def secret_keys(config: dict) -> list[str]:
    """SECRET_KEY holds one key or comma-separated keys: the first signs, all verify (rotation)."""
    return _keys(str(config.get("SECRET_KEY") or ""))


def secret_key_problems(config: dict) -> list[str]:
    keys = secret_keys(config)
    if keys and all(len(key) >= MIN_SECRET_KEY_LENGTH and len(set(key)) >= MIN_SECRET_KEY_SYMBOLS
                    for key in keys):
        return []
    return [f"SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} random characters (each key, if several "
            "are comma-separated); make one with: python -c \"import secrets; print(secrets.token_urlsafe(32))\""]


def session_ttl_problems(config: dict) -> list[str]:
    low, high = SESSION_TOKEN_TTL_RANGE
    ttl = config["SESSION_TOKEN_TTL"]
    if not isinstance(ttl, int) or low <= ttl <= high:  # not a number: number_problems says so
        return []
    return [f"SESSION_TOKEN_TTL must be between {low} and {high} seconds, not {ttl}."]


def endpoint_problems(config: dict) -> list[str]:
    """https only, and a public OAuth server: the client secret and refresh tokens are sent to it,
    and Bitrix24 sends installer and event tokens to the app's public URL."""
    from .services.settings import endpoint_problem

    insecure = bool(config["BITRIX_ALLOW_INSECURE"])
    hint = "(BITRIX_ALLOW_INSECURE=1 is only for the sandbox and tests)"
    problems = []
    public_url = urlsplit(config["APP_PUBLIC_URL"])
    if not insecure and (public_url.scheme != "https" or not public_url.netloc):
        problems.append(f"APP_PUBLIC_URL must be an https:// URL: Bitrix24 sends installation and event tokens "
                        f"to it {hint}.")
    oauth_problem = endpoint_problem(config["BITRIX_OAUTH_SERVER"], allow_insecure=insecure)
    if oauth_problem:
        problems.append(f"BITRIX_OAUTH_SERVER {oauth_problem}: the client secret and refresh tokens are sent to it, "
                        f"so it must be https:// on a public host {hint}.")
    return problems


def database_problems(config: dict) -> list[str]:
    if not str(config["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite") or config.get("ALLOW_SQLITE"):
        return []
    return ["DATABASE_URL is SQLite (also the default when it is unset): SQLite has no row locks, so every token "
            "refresh holds the whole database's write lock during the OAuth call and all other workers wait. "
            "Use PostgreSQL (DATABASE_URL=postgresql+psycopg://...), or set ALLOW_SQLITE=1 to accept that."]


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
        refuse(number_problems(config))
        validate_gateway(config)


class TestConfig(SandboxConfig):
    TESTING = True
