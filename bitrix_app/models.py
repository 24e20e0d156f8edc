"""Database models: a portal per member_id, its current tokens, and its history.

The models use plain SQLAlchemy (no Flask) so the CLI, jobs and services share them.
Token columns hold Fernet ciphertext only; see services/crypto.py.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class PortalStatus:
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"
    PAYMENT_REQUIRED = "payment_required"
    UNINSTALLED = "uninstalled"
    # The stored token stopped working; an administrator opening the app can re-seed it.
    RESEEDABLE = frozenset({NEEDS_REAUTH, PAYMENT_REQUIRED})


class Portal(Base):
    __tablename__ = "portals"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    domain: Mapped[str] = mapped_column(String(255), index=True)
    client_endpoint: Mapped[str] = mapped_column(String(512))
    server_endpoint: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(32), default=PortalStatus.ACTIVE)
    scope: Mapped[str] = mapped_column(String(512), default="")
    application_token_encrypted: Mapped[str | None] = mapped_column(Text)
    # Users (Bitrix user ids) an administrator allowed to edit in the tab.
    editor_user_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # The opaque key in the gateway's endpoint URLs (never the member_id); see gateway/.
    gateway_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    lang: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    # The portal's FORMAT_DATETIME (e.g. "DD.MM.YYYY HH:MI:SS") for filter dates; None: guessed.
    date_format: Mapped[str | None] = mapped_column(String(64))
    # Bumped at every install, reinstall and uninstall: tab sessions of an earlier one stop working.
    install_generation: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    installed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    token: Mapped[PortalToken | None] = relationship(
        back_populates="portal", cascade="all, delete-orphan", uselist=False
    )


class PortalToken(Base):
    """The portal's current OAuth pair. One row per portal; its row lock serialises refreshes."""

    __tablename__ = "portal_tokens"

    portal_id: Mapped[int] = mapped_column(
        ForeignKey("portals.id", ondelete="CASCADE"), primary_key=True
    )
    access_token_encrypted: Mapped[str] = mapped_column(Text)
    refresh_token_encrypted: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    user_id: Mapped[int | None] = mapped_column(Integer)
    # Bumped on every change, so a worker can tell whether someone else refreshed already.
    version: Mapped[int] = mapped_column(Integer, default=1)
    refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    portal: Mapped[Portal] = relationship(back_populates="token")


class PortalHistory(Base):
    """Append-only record of installs, updates, uninstalls, refreshes and refresh failures."""

    __tablename__ = "portal_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(1024), default="")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class ReseedGrantRecord(Base):
    """An administrator's own authorization, kept for one click on "Renew authorization" in the
    tab (services/session_tokens.py): found by a random handle, short-lived, used once."""

    __tablename__ = "reseed_grants"

    handle: Mapped[str] = mapped_column(String(64), primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(Integer)
    authorization_encrypted: Mapped[str] = mapped_column(Text)  # Fernet ciphertext
    expires_at: Mapped[float] = mapped_column()  # Unix time


class RateLimitBucket(Base):
    """Client-side leaky bucket state shared by every process (see services/ratelimit.py)."""

    __tablename__ = "rate_limit_buckets"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    level: Mapped[float] = mapped_column(default=0.0)
    updated: Mapped[float] = mapped_column(default=0.0)


class GatewayConnector(Base):
    """The Bitrix24 connector the app registered on a portal for one database kind."""

    __tablename__ = "gateway_connectors"
    __table_args__ = (UniqueConstraint("portal_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    connector_id: Mapped[int] = mapped_column(Integer)
    synced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Database(Base):
    """A customer database an administrator added; BI Builder reaches it through one Bitrix24
    source whose settings hold only `source_key` and a secret (its hash is stored here)."""

    __tablename__ = "gateway_databases"

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(512))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(32))
    # Fernet ciphertext of {host, port, database, user, password, tls_mode} (services/crypto.py).
    connection_encrypted: Mapped[str] = mapped_column(Text)
    schema_name: Mapped[str | None] = mapped_column(String(255))
    tables: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: every table and view
    saved_queries: Mapped[list[dict]] = mapped_column(JSON, default=list)  # [{code, title, sql}]
    source_key: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    pending_secret_hash: Mapped[str | None] = mapped_column(String(64))  # during a rotation
    source_id: Mapped[int | None] = mapped_column(Integer)
    connector_id: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)  # bumped on every edit: caches, pools
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ConnectorSecretSettings(Base):
    """Which setting codes of one Bitrix24 connector hold secrets (values never shown), as an
    administrator chose: `codes` are secret, `public_codes` are not; any other code follows the
    default rule (services/secret_settings.py). Kept by the app, never sent to Bitrix24."""

    __tablename__ = "connector_secret_settings"
    __table_args__ = (UniqueConstraint("portal_id", "connector_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"), index=True)
    connector_id: Mapped[int] = mapped_column(Integer)
    codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    public_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ChangeRecord(Base):
    """One write the app made to a Bitrix24 connector or source: who, when, from where, and each
    field's old and new value (secret values are never stored: "***" or None; services/history.py)."""

    __tablename__ = "change_history"
    __table_args__ = (Index("ix_change_history_object", "portal_id", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"), index=True)
    object_type: Mapped[str] = mapped_column(String(16))  # "connector" | "source"
    object_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16), default="update")  # update | create | delete | revert
    actor_kind: Mapped[str] = mapped_column(String(8))  # user | cli | plan
    actor_id: Mapped[int | None] = mapped_column(Integer)  # the Bitrix24 user id, for "user"
    actor_name: Mapped[str] = mapped_column(String(255), default="")
    via: Mapped[str] = mapped_column(String(8))  # tab | api | cli | plan
    changes: Mapped[list[dict]] = mapped_column(JSON, default=list)  # [{field, old, new, secret}]
    reverts_id: Mapped[int | None] = mapped_column(Integer)  # the change this one reverted
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class PortalUserName(Base):
    """A portal user's name as `user.get` answered it, cached for "last change" and the editor list."""

    __tablename__ = "portal_user_names"

    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
