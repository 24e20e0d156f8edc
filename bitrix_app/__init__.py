"""The Bitrix24 BI Builder app: `create_app()` builds the Flask app; `portal_client()` is the
entry point for scripts and jobs."""
from __future__ import annotations

import threading
from pathlib import Path

from flask import Flask, jsonify, render_template, request
from sqlalchemy import text

from .config import INSTANCE_PATH, Config, ProductionConfig, default_database_url
from .extensions import db, migrate
from .gateway.service import Gateway
from .gateway.settings import GatewaySettings
from .logging_setup import install_log_redaction
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


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/events")) or request.accept_mimetypes.best == "application/json"


def error_response(status: int, code: str, description: str):
    if wants_json():
        return jsonify(error=code, error_description=description), status
    return render_template("error.html", status=status, code=code, description=description), status


def register_error_handlers(app: Flask) -> None:
    from werkzeug.exceptions import HTTPException

    @app.errorhandler(Rejected)
    def rejected(exc: Rejected):
        return error_response(exc.status, exc.code, exc.description)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").upper().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or "")


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
    and waits for the portal's shared leaky bucket before every request:

        from bitrix_app import portal_client
        from bitrix_app.services.biconnector import Biconnector

        client = portal_client("example.bitrix24.com")       # or the portal's member_id
        client.call("biconnector.connector.list")
        Biconnector(client).update_source(7, {"title": "Warehouse", "settings": {"host": "db2"}})

    Raises `PortalUnavailable` for an unknown, uninstalled or re-authorization-needing portal.
    """
    return shared_bitrix().client(member_id_or_domain)
