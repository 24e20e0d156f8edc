"""Secrets stay out of the database in clear text, out of logs, and out of error messages."""
import logging
from pathlib import Path

from sqlalchemy import select, text

from bitrix_app.models import Base
from tests.conftest import CLIENT_SECRET


def known_secrets(fake, portal, bitrix):
    return {
        "access token": bitrix.tokens.current(portal.member_id).value,
        "refresh token": bitrix.tokens.refresh_token(portal.member_id),
        "application token": portal.application_token,
    }


def test_database_holds_no_token_in_clear_text(fake, installed_portal, bitrix, database_url):
    fake.expire_access_tokens(installed_portal)
    bitrix.client(installed_portal.member_id).call("user.admin")  # refresh, store a new pair
    secrets = known_secrets(fake, installed_portal, bitrix)

    with bitrix.session_factory() as session:
        dump = " ".join(
            repr(row) for table in Base.metadata.sorted_tables for row in session.execute(select(table)).all()
        )
    for name, value in secrets.items():
        assert value not in dump, f"{name} stored in clear text"
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        with bitrix.session_factory() as session:
            session.execute(text("PRAGMA wal_checkpoint(FULL)"))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        for name, value in secrets.items():
            assert value.encode() not in raw, f"{name} in the SQLite file"


def test_no_secret_appears_in_logs(fake, portal, bitrix, caplog):
    caplog.set_level(logging.DEBUG)
    fake.install(portal)
    fake.finish_install(portal)
    fake.expire_access_tokens(portal)
    bitrix.client(portal.member_id).call("user.admin")  # GET /oauth/token/?refresh_token=…&client_secret=…
    fake.uninstall(portal)

    assert "oauth/token" in caplog.text  # the token request itself was logged…
    for value in [*known_secrets_after_uninstall(fake, portal), CLIENT_SECRET]:
        assert value not in caplog.text  # …without its secrets


def known_secrets_after_uninstall(fake, portal):
    """Every token the fake ever issued for the portal, plus its application token."""
    issued = [token.value for token in fake.state.access_tokens.values() if token.member_id == portal.member_id]
    issued += [token.value for token in fake.state.refresh_tokens.values() if token.member_id == portal.member_id]
    assert issued, "the fake issued no tokens?"
    return issued + [portal.application_token]
