"""Which source settings are secret: their values are write-only everywhere (tab, API, CLI, plan
diffs, history); every other value is shown.

A code is secret when an administrator marked it so for its connector; codes they marked as not
secret are shown; any other code (no choice made yet, or a setting added later) follows the default
rule: secret when it contains one of DEFAULT_MARKERS ("db_password", "apiToken", "source_key"…).
The choices live in the app's database (`connector_secret_settings`), never in Bitrix24.
"""
from __future__ import annotations

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import sessionmaker

from ..models import ConnectorSecretSettings, Portal
from .tokens import portal_by_member_id

DEFAULT_MARKERS = ("password", "secret", "token", "key", "pass", "pwd")
MAX_CODE_LENGTH = 512


def is_secret_by_default(code: str) -> bool:
    lowered = str(code).lower()
    return any(marker in lowered for marker in DEFAULT_MARKERS)


# Built once, so SQLAlchemy reuses its cache key and compiled form for every portal of a plan.
_CHOICES = (select(ConnectorSecretSettings.connector_id, ConnectorSecretSettings.codes,
                   ConnectorSecretSettings.public_codes)
            .join(Portal, Portal.id == ConnectorSecretSettings.portal_id)
            .where(Portal.member_id == bindparam("member_id")))


class SecretSettings:
    """The secret setting codes of one portal's connectors (read once per instance)."""

    def __init__(self, session_factory: sessionmaker, member_id: str):
        self.session_factory = session_factory
        self.member_id = member_id
        self._choices: dict[int, tuple[set[str], set[str]]] | None = None

    def choices(self) -> dict[int, tuple[set[str], set[str]]]:
        """Connector id -> (codes marked secret, codes marked not secret)."""
        if self._choices is None:
            with self.session_factory() as db:  # one statement: a plan reads this for every portal
                self._choices = {connector_id: (set(codes or []), set(public or []))
                                 for connector_id, codes, public in db.execute(_CHOICES, {"member_id": self.member_id})}
        return self._choices

    def is_secret(self, connector_id: int | None, code: str) -> bool:
        secret, public = self.choices().get(connector_id, (set(), set()))
        if code in secret or code in public:
            return code in secret
        return is_secret_by_default(code)

    def codes(self, connector: dict) -> list[str]:
        """The secret codes among the connector's declared settings."""
        declared = [str(row.get("code")) for row in connector.get("settings") or [] if isinstance(row, dict)]
        return [code for code in declared if self.is_secret(connector.get("id"), code)]

    def set_codes(self, connector_id: int, codes: list[str], declared: list[str]) -> None:
        """`codes` become secret, the connector's other `declared` codes not."""
        public = sorted(set(declared) - set(codes))
        with self.session_factory() as db, db.begin():
            portal = portal_by_member_id(db, self.member_id)
            row = db.scalar(select(ConnectorSecretSettings).where(
                ConnectorSecretSettings.portal_id == portal.id,
                ConnectorSecretSettings.connector_id == connector_id))
            if row is None:
                db.add(ConnectorSecretSettings(portal_id=portal.id, connector_id=connector_id,
                                               codes=sorted(codes), public_codes=public))
            else:  # new lists, so the JSON columns are marked changed
                row.codes, row.public_codes = sorted(codes), public
        self._choices = None

    def forget(self, connector_id: int) -> None:
        """A deleted connector's choices go with it."""
        with self.session_factory() as db, db.begin():
            portal = portal_by_member_id(db, self.member_id)
            if portal is not None:
                db.execute(delete(ConnectorSecretSettings).where(
                    ConnectorSecretSettings.portal_id == portal.id,
                    ConnectorSecretSettings.connector_id == connector_id))
        self._choices = None
