"""Engine and session setup shared by the web app, the CLI and jobs."""
from __future__ import annotations

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

SQLITE_CONNECT_ARGS = {"timeout": 60}  # seconds a writer waits for SQLite's lock


def configure_sqlite(engine: Engine) -> None:
    """WAL lets readers work while a refresh holds the write lock."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": dict(SQLITE_CONNECT_ARGS)}
    return {"pool_pre_ping": True}


def make_engine(url: str) -> Engine:
    engine = create_engine(url, **engine_options(url))
    configure_sqlite(engine)
    return engine


def make_session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, expire_on_commit=False)
