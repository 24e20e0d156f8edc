"""Which of a portal's Bitrix24 connectors and sources this app's gateway manages: its registered
connectors (`gateway_connectors`) and its databases' sources (`gateway_databases.source_id`).
They are changed through the database entries, never as custom connectors or sources: deleting
one would break a database, and a gateway source's settings hold the gateway's key and secret."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, literal, select, union_all

from ..models import Database, GatewayConnector, Portal

# Built once: SQLAlchemy then reuses its cache key and compiled form for every portal.
_PORTAL_ID = select(Portal.id).where(Portal.member_id == bindparam("member_id")).scalar_subquery()
_OWNED = union_all(
    select(literal("connector"), GatewayConnector.connector_id).where(GatewayConnector.portal_id == _PORTAL_ID),
    select(literal("source"), Database.source_id).where(Database.portal_id == _PORTAL_ID,
                                                        Database.source_id.is_not(None)))


@dataclass(frozen=True)
class GatewayObjects:
    connector_ids: frozenset[int] = frozenset()
    source_ids: frozenset[int] = frozenset()

    @classmethod
    def of_portal(cls, session_factory, member_id: str) -> GatewayObjects:
        """One statement: a plan over thousands of portals pays for every round trip."""
        with session_factory() as db:
            rows = db.execute(_OWNED, {"member_id": member_id}).all()
        return cls(frozenset(object_id for kind, object_id in rows if kind == "connector"),
                   frozenset(object_id for kind, object_id in rows if kind == "source"))
