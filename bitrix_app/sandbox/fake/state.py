"""In-memory model of the fake: portals, users, tokens, biconnector objects, logs and a clock.

Everything lives in one ``State`` guarded by one re-entrant lock. Request handlers run in
several threads (the fake is a threaded server, because ``source.update`` waits on a call to
our app), so any read-modify-write of the state happens inside ``with state.lock:``.
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


class FakeClock:
    """Real time by default; tests can ``advance()`` it or ``freeze()`` it.

    Token expiry, the leaky bucket and biconnector dates all read this clock.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._frozen_at: float | None = None

    def now(self) -> float:
        if self._frozen_at is not None:
            return self._frozen_at
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if self._frozen_at is not None:
            self._frozen_at += seconds
        else:
            self._offset += seconds

    def freeze(self, at: float | None = None) -> None:
        self._frozen_at = self.now() if at is None else at

    def unfreeze(self) -> None:
        if self._frozen_at is not None:
            self._offset = self._frozen_at - time.time()
            self._frozen_at = None

    def reset(self) -> None:
        self._offset = 0.0
        self._frozen_at = None

    def iso(self, timestamp: float | None = None) -> str:
        moment = self.now() if timestamp is None else timestamp
        return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="seconds")

    def bitrix_datetime(self) -> str:
        """``Y-m-d H:i:s``, the format biconnector uses for its dates (no timezone)."""
        return datetime.fromtimestamp(self.now(), timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


# Kinds of calls to connector endpoints, one per endpoint.
CONNECTOR_CALLS = ("url_check", "table_list", "table_description", "data")


def new_token() -> str:
    return secrets.token_hex(32)


@dataclass
class User:
    id: int
    name: str
    last_name: str
    email: str
    is_admin: bool = False
    bi_access: bool = True  # "Access to BI Builder" and "Access to Analytics Hub"

    @property
    def full_name(self) -> str:
        return f"{self.name} {self.last_name}".strip()


@dataclass
class AccessToken:
    value: str
    member_id: str
    user_id: int
    client_id: str
    scope: str
    expires_at: float
    status: str = "live"  # live | rotated (its refresh token was used) | revoked (uninstall)


@dataclass
class RefreshToken:
    value: str
    member_id: str
    user_id: int
    client_id: str
    scope: str
    expires_at: float
    access_token: str  # the access token issued together with this one
    status: str = "live"  # live | claimed (a refresh is in progress) | used | revoked


@dataclass
class AuthCode:
    value: str
    member_id: str
    user_id: int
    client_id: str
    expires_at: float
    used: bool = False


@dataclass
class App:
    client_id: str
    client_secret: str
    scope: str


@dataclass
class LeakyBucket:
    level: float = 0.0
    updated_at: float = 0.0


@dataclass(eq=False)
class Portal:
    """One Bitrix24 account with our app on it. Its REST API lives under ``/<domain>/rest/``."""

    domain: str
    member_id: str
    enterprise: bool
    state: "State" = field(repr=False)
    users: dict[int, User] = field(default_factory=dict)

    # Our app on this portal: "added" (installer not finished), "installed" or "uninstalled".
    app_state: str = "added"
    application_token: str = field(default_factory=lambda: secrets.token_hex(16))
    app_version: int = 1
    app_status: str = "P"  # L local, F free, D demo, T trial, P paid
    language: str = "en"
    # Regional settings (FORMAT_DATETIME, FORMAT_DATE): BI Builder writes filter dates in them.
    datetime_format: str = "DD.MM.YYYY HH:MI:SS"
    date_format: str = "DD.MM.YYYY"

    # Fault switches, settable by tests at any time.
    payment_required: bool = False
    operation_time_limit_methods: set[str] = field(default_factory=set)
    inject_503: int = 0
    html_5xx: int = 0

    # biconnector storage (plain dicts, keyed by id) and app handlers.
    connectors: dict[int, dict] = field(default_factory=dict)
    sources: dict[int, dict] = field(default_factory=dict)
    tables: dict[int, dict] = field(default_factory=dict)  # BI Builder datasets, see bi_builder.py
    preview_cache: dict[tuple, tuple[float, list]] = field(default_factory=dict, repr=False)
    bound_events: list[dict] = field(default_factory=list)
    placements: list[dict] = field(default_factory=list)

    # Counters.
    refresh_count: int = 0
    token_request_count: int = 0
    buckets: dict[str, LeakyBucket] = field(default_factory=dict, repr=False)
    _ids: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def installed(self) -> bool:
        return self.app_state == "installed"

    @property
    def admin(self) -> User:
        return self.users[1]

    @property
    def base_url(self) -> str:
        return f"{self.state.base_url}/{self.domain}"

    @property
    def client_endpoint(self) -> str:
        return f"{self.base_url}/rest/"

    @property
    def page_url(self) -> str:
        return f"{self.base_url}/"

    def next_id(self, kind: str) -> int:
        with self.state.lock:
            self._ids[kind] = self._ids.get(kind, 0) + 1
            return self._ids[kind]

    def add_user(self, name: str = "Ivan Petrov", admin: bool = False, bi_access: bool = True) -> User:
        first, _, last = name.partition(" ")
        with self.state.lock:
            user_id = max(self.users, default=0) + 1
            user = User(user_id, first, last, f"user{user_id}@{self.domain}", admin, bi_access)
            self.users[user_id] = user
            return user

    def user(self, user_or_id: User | int | None) -> User:
        if user_or_id is None:
            return self.admin
        user_id = user_or_id.id if isinstance(user_or_id, User) else int(user_or_id)
        return self.users[user_id]


class State:
    """All of the fake's data. Reset by creating a new one."""

    def __init__(self, clock: FakeClock, main_app: App) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.base_url: str | None = None
        self.main_client_id = main_app.client_id
        self.apps: dict[str, App] = {main_app.client_id: main_app}
        self.portals: dict[str, Portal] = {}  # by member_id
        self.old_domains: dict[str, str] = {}  # renamed portals: old domain -> member_id
        self.rest_redirects: dict[str, str] = {}  # domain -> where its REST API redirects (see redirect_rest)
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.auth_codes: dict[str, AuthCode] = {}
        self.request_log: list[dict[str, Any]] = []
        self.outbound_calls: list[dict[str, Any]] = []  # to connector endpoints, see CONNECTOR_CALLS
        self.app_calls: list[dict[str, Any]] = []  # to our app: installer, iframe opens, events
        self.token_request_count = 0

    @property
    def oauth_domain(self) -> str:
        """What a token response calls ``domain``: the authorization server's host."""
        return (self.base_url or "").split("://", 1)[-1]

    @property
    def server_endpoint(self) -> str:
        return f"{self.base_url}/rest/"

    def find_portal(self, domain_or_member_id: str) -> Portal | None:
        with self.lock:
            if domain_or_member_id in self.portals:
                return self.portals[domain_or_member_id]
            for portal in self.portals.values():
                if portal.domain == domain_or_member_id:
                    return portal
            return None

    def add_portal(self, domain: str, member_id: str | None, enterprise: bool) -> Portal:
        with self.lock:
            if self.find_portal(domain) is not None:
                raise ValueError(f"portal {domain} already exists")
            portal = Portal(domain=domain, member_id=member_id or secrets.token_hex(16),
                            enterprise=enterprise, state=self)
            portal.users[1] = User(1, "Anna", "Admin", f"admin@{domain}", is_admin=True, bi_access=True)
            self.portals[portal.member_id] = portal
            return portal

    def is_app_installed(self, portal: Portal, client_id: str) -> bool:
        """Whether tokens of this app work on this portal. Apps other than ours always do."""
        if client_id != self.main_client_id:
            return True
        return portal.app_state != "uninstalled"

    def record_call(self, entry: dict) -> None:
        with self.lock:
            target = self.outbound_calls if entry["kind"] in CONNECTOR_CALLS else self.app_calls
            target.append(entry)

    def record_request(self, entry: dict) -> None:
        with self.lock:
            self.request_log.append(entry)
