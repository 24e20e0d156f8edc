"""The Bitrix24 BI Builder app: `create_app()` builds the Flask app; `portal_client()` is the
entry point for scripts and jobs."""
from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

from flask import Flask, jsonify, render_template, request
from sqlalchemy import text

from .config import INSTANCE_PATH, Config, ProductionConfig, default_database_url
from .extensions import db, migrate
from .gateway.service import Gateway
from .gateway.settings import GatewaySettings
from .logging_setup import escaped, install_log_redaction
from .services.bitrix import Bitrix
from .services.database import configure_sqlite, engine_options, make_session_factory
from .services.errors import Rejected
from .services.rest import BitrixClient
from .services.settings import BitrixSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(config_class: type[Config] = ProductionConfig, overrides: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        instance_path=str(INSTANCE_PATH),
    )
    app.config.from_object(config_class)
    app.config.update(overrides or {})
    app.config["SQLALCHEMY_DATABASE_URI"] = app.config["SQLALCHEMY_DATABASE_URI"] or default_database_url()
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(app.config["SQLALCHEMY_DATABASE_URI"]))
    config_class.validate(app.config)
    install_log_redaction()

    register_extensions(app)
    register_blueprints(app)
    register_input_checks(app)
    register_error_handlers(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    with app.app_context():
        configure_sqlite(db.engine)
        bitrix = Bitrix(BitrixSettings.from_config(app.config), make_session_factory(db.engine))
        app.extensions["bitrix"] = bitrix
        app.extensions["gateway"] = Gateway(GatewaySettings.from_config(app.config), bitrix.session_factory,
                                            bitrix.tokens.cipher)


def register_blueprints(app: Flask) -> None:
    from . import api, connector, events, install, placement

    app.register_blueprint(install.bp)
    app.register_blueprint(connector.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(placement.bp)
    app.register_blueprint(api.bp)

    @app.get("/healthz")
    def healthz():
        try:
            with app.extensions["bitrix"].session_factory() as session:
                session.execute(text("SELECT 1"))
        except Exception:  # any database failure means "not healthy"
            return jsonify(status="error", database="unreachable"), 503
        return jsonify(status="ok", database="ok")


# NUL (PostgreSQL refuses it in text: a 500 later), other control characters and lone surrogates.
# Tab, line feed and carriage return are ordinary text (a description, a saved query).
FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# Not the connector blueprint: /gateway/ takes customers' filter strings and validates them itself.
CHECKED_BLUEPRINTS = ("install", "events", "placement", "api")


def register_input_checks(app: Flask) -> None:
    for name in CHECKED_BLUEPRINTS:
        # Appended after the blueprint's own hooks: /api authenticates and caps the body size first.
        app.before_request_funcs.setdefault(name, []).append(reject_control_characters)


def reject_control_characters() -> None:
    """400 INVALID_CHARACTERS for a query, form or JSON body with a forbidden character in a name or value."""
    for where, text in submitted_text():
        found = FORBIDDEN_CHARACTERS.search(text)
        if found:
            raise Rejected(400, "INVALID_CHARACTERS",
                           f"The field {escaped(where, limit=80)} contains a control character "
                           f"(U+{ord(found.group()):04X}); remove it and send the request again.")


def submitted_text() -> Iterator[tuple[str, str]]:
    """(field, text) for every name and value in the query string, the form and a JSON body."""
    for values in (request.args, request.form):
        for name, value in values.items(multi=True):
            yield name, name
            yield name, value
    if request.is_json:
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # absurdly deep: the view answers INVALID_JSON
            return
        yield from json_text(body)


def json_text(body) -> Iterator[tuple[str, str]]:
    """(path, text) for every key and string in parsed JSON; a loop, not recursion, whatever the depth."""
    pending = [("", body)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                yield child, str(key)
                pending.append((child, item))
        elif isinstance(value, list):
            pending.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
        elif isinstance(value, str):
            yield path, value


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/events")) or request.accept_mimetypes.best == "application/json"


def error_response(status: int, code: str, description: str, headers: dict | None = None):
    if wants_json():
        return jsonify(error=code, error_description=description), status, headers or {}
    return render_template("error.html", status=status, code=code, description=description), status, headers or {}


def register_error_handlers(app: Flask) -> None:
    from werkzeug.exceptions import HTTPException

    @app.errorhandler(Rejected)
    def rejected(exc: Rejected):
        return error_response(exc.status, exc.code, exc.description)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").upper().replace(" ", "_")
        # Keep what the exception says besides its body: Retry-After on a 429, Allow on a 405.
        headers = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
        return error_response(exc.code or 500, code, exc.description or "", headers)


def register_commands(app: Flask) -> None:
    from .cli import register

    register(app)


_shared_bitrix: Bitrix | None = None
_shared_bitrix_lock = threading.Lock()


def shared_bitrix() -> Bitrix:
    """The process-wide `Bitrix` for scripts and jobs, built from the environment on first use.

    One per process: one database engine, one HTTP connection pool, one rate limiter, whatever
    the number of `portal_client` calls.
    """
    global _shared_bitrix
    with _shared_bitrix_lock:
        if _shared_bitrix is None:
            _shared_bitrix = Bitrix.from_env()
        return _shared_bitrix


def portal_client(member_id_or_domain: str) -> BitrixClient:
    """The REST client of one portal, for scripts and jobs; no Flask app or request needed.

    Reads the same environment as the web app (DATABASE_URL, BITRIX_CLIENT_ID, ...). The client
    uses the portal's stored token, refreshes it single-flight when Bitrix24 says it expired,
    and waits for the portal's shared leaky bucket before every request (up to
    BITRIX_JOB_MAX_WAIT; a longer queue raises `RateLimited`):

        from bitrix_app import portal_client
        from bitrix_app.services.biconnector import Biconnector

        client = portal_client("example.bitrix24.com")       # or the portal's member_id
        client.call("biconnector.connector.list")
        Biconnector(client).update_source(7, {"title": "Warehouse", "settings": {"host": "db2"}})

    Raises `PortalUnavailable` for an unknown, uninstalled or re-authorization-needing portal.
    """
    return shared_bitrix().for_jobs().client(member_id_or_domain)
