"""`Bitrix`: everything the app needs to talk to Bitrix24, wired once, with no Flask in sight.

The web tier keeps one in `app.extensions["bitrix"]`; the CLI and scripts build one with
`Bitrix.from_env()` (see `bitrix_app.portal_client`). Its clients wait at most BITRIX_WEB_MAX_WAIT
for a rate-limit slot; `for_jobs()` gives the CLI, plans and scripts the longer job cap.
"""
from __future__ import annotations

import copy
import hmac
from datetime import datetime, timezone
from urllib.parse import urlsplit

from sqlalchemy.orm import sessionmaker

from ..logging_setup import install_log_redaction
from ..models import Portal, PortalStatus
from .biconnector import Biconnector
from .crypto import TokenCipher
from .errors import PORTAL_NOT_FOUND, BitrixError, OAuthError, PortalUnavailable
from .oauth import AppInfo, OAuthClient
from .ratelimit import RateLimiter, limiter_for
from .rest import BitrixClient, StaticCredentials, make_http_session
from .settings import BitrixSettings
from .tokens import AccessToken, TokenStore, find_portal, portal_by_member_id, store_address
from .validation import EndpointPolicy


class PortalCredentials:
    """The stored token of one portal, refreshed single-flight through the TokenStore."""

    def __init__(self, tokens: TokenStore, oauth: OAuthClient, member_id: str):
        self.tokens = tokens
        self.oauth = oauth
        self.member_id = member_id

    def current(self) -> AccessToken:
        return self.tokens.remembered(self.member_id)

    def reread(self) -> AccessToken:
        return self.tokens.current(self.member_id)

    def refreshed(self, stale: AccessToken) -> AccessToken:
        return self.tokens.refresh(self.member_id, stale.version, self.oauth.refresh)


class Bitrix:
    def __init__(self, settings: BitrixSettings, session_factory: sessionmaker, limiter: RateLimiter | None = None):
        install_log_redaction()  # also for scripts and jobs that never build a Flask app
        self.settings = settings
        self.session_factory = session_factory
        self.http = make_http_session()
        self.oauth = OAuthClient(settings, self.http)
        self.tokens = TokenStore(session_factory, TokenCipher(list(settings.encryption_keys)))
        # Every request to a portal first waits for its shared leaky bucket (services/ratelimit.py).
        # None only when BITRIX_RATE_PER_SECOND is 0: requests then go out unpaced.
        self.limiter = limiter if limiter is not None else limiter_for(self)
        # How long the clients made here wait for a slot: the web tier's cap unless the creator
        # asked for the job cap with `for_jobs()` (CLI commands, plans, scripts).
        self.max_wait: float = settings.web_max_wait
        # Where connector endpoint URLs may point (tab, CLI and plans check changed URLs with it).
        self.endpoint_policy = EndpointPolicy(settings.endpoint_networks)

    @classmethod
    def from_env(cls) -> "Bitrix":
        """For scripts and jobs: the same configuration the web app reads."""
        from ..config import Config, ProductionConfig, default_database_url
        from .database import make_engine, make_session_factory

        config = {name: getattr(ProductionConfig, name) for name in dir(ProductionConfig) if name.isupper()}
        config["SQLALCHEMY_DATABASE_URI"] = config["SQLALCHEMY_DATABASE_URI"] or default_database_url()
        Config.validate(config)
        return cls(BitrixSettings.from_config(config), make_session_factory(make_engine(config["SQLALCHEMY_DATABASE_URI"])))

    def portal(self, member_id_or_domain: str) -> Portal:
        with self.session_factory() as session:
            portal = find_portal(session, member_id_or_domain, with_token=True)
            if portal is None:
                raise PortalUnavailable(PORTAL_NOT_FOUND, f"No portal with member id or domain {member_id_or_domain!r}.")
            return portal

    def client(self, member_id_or_domain: str) -> BitrixClient:
        """A REST client bound to the portal's stored token (refresh and renames handled)."""
        return self.client_of(self.portal(member_id_or_domain))

    def client_of(self, portal: Portal) -> BitrixClient:
        """`client` for a portal row just read with `portal()`: its token comes along (no second read)."""
        if portal.status != PortalStatus.ACTIVE:
            # Marked by another worker (needs_reauth, payment, uninstalled): the store has the final word.
            self.tokens.forget(portal.member_id)
        else:
            self.tokens.take_read(portal)
        credentials = PortalCredentials(self.tokens, self.oauth, portal.member_id)
        return self._client(portal.client_endpoint, credentials, self._paced(portal.member_id), portal.member_id)

    # --- a portal's address (it changes when the portal is renamed) ---------------------------

    def recheck_address(self, member_id: str) -> Portal:
        """Ask the authorization server (app.info with the stored token) where the portal is now,
        and store that. Never an address from a request or a redirect."""
        info = self._stored_token_info(member_id)
        problem = self._address_problem(info, member_id)
        if problem:
            raise BitrixError("PORTAL_MOVED", f"The portal's address was not changed: {problem}.", method="app.info")
        return store_address(self.session_factory, member_id, info.domain, info.client_endpoint)

    def _address_problem(self, info: AppInfo, member_id: str) -> str | None:
        if not (hmac.compare_digest(info.client_id.encode(), self.settings.client_id.encode())
                and hmac.compare_digest(info.member_id.encode(), member_id.encode())):
            return "the authorization server answered for another application or portal"
        if not info.domain:
            return "the authorization server named no domain"
        if not self.settings.is_acceptable_url(info.client_endpoint):
            return "the REST endpoint it named is not an https URL on a public address"
        return None

    def relocated_endpoint(self, member_id: str, redirected_from: str, location: str) -> str:
        """Where a client of the portal goes after `redirected_from` answered with a redirect to
        `location`: the portal's endpoint, if `location` is under it and it is confirmed (stored by
        another worker already, or by the authorization server now). Otherwise PORTAL_MOVED."""
        with self.session_factory() as session:
            stored = portal_by_member_id(session, member_id)
        stored_elsewhere = stored is not None and stored.client_endpoint != redirected_from
        if stored_elsewhere and _under(location, stored.client_endpoint):
            return stored.client_endpoint
        portal = self.recheck_address(member_id)
        if not _under(location, portal.client_endpoint):
            raise BitrixError("PORTAL_MOVED", f"The portal redirected the call to {_origin(location)}, which the "
                              "authorization server does not confirm as its address; it was not sent there.")
        return portal.client_endpoint

    def _stored_token_info(self, member_id: str) -> AppInfo:
        """app.info for the stored token, refreshed first when it has expired (at most once)."""
        credentials = PortalCredentials(self.tokens, self.oauth, member_id)
        token = credentials.current()
        refreshed = token.is_expired(datetime.now(timezone.utc))
        if refreshed:
            token = credentials.refreshed(token)
        while True:
            try:
                return self.oauth.app_info(token.value)
            except OAuthError as exc:
                if exc.code != "expired_token" or refreshed:
                    raise _unconfirmed(exc) from None
            token, refreshed = credentials.refreshed(token), True

    def for_jobs(self) -> "Bitrix":
        """This Bitrix (same pools, token store and limiter) for CLI runs, plans and jobs: its
        clients may wait up to BITRIX_JOB_MAX_WAIT for a slot instead of the web tier's cap."""
        jobs = copy.copy(self)
        jobs.max_wait = self.settings.job_max_wait
        return jobs

    def user_client(self, client_endpoint: str, access_token: str, member_id: str | None = None) -> BitrixClient:
        """A client acting with a user's own token, which we never store.
        With the portal's member_id its calls wait for the portal's shared bucket too."""
        return self._client(client_endpoint, StaticCredentials(access_token), self._paced(member_id))

    def unverified_client(self, client_endpoint: str, access_token: str, member_id: str,
                          client_address: str) -> BitrixClient:
        """A client with a token nobody has verified yet (a tab opening's AUTH_ID). Its calls pass
        the small budgets for unverified callers of the portal and the client's address first,
        so forged openings cannot use up the portal's bucket."""
        throttle = None
        if self.limiter is not None:
            throttle = lambda: self.limiter.acquire_unverified(member_id, client_address, self.max_wait)  # noqa: E731
        return self._client(client_endpoint, StaticCredentials(access_token), throttle, member_id)

    def biconnector(self, member_id_or_domain: str) -> Biconnector:
        return Biconnector(self.client(member_id_or_domain))

    def _paced(self, member_id: str | None):
        """The throttle of a client of `member_id`: its portal's bucket, waiting at most `max_wait`."""
        if self.limiter is None or member_id is None:
            return None
        return lambda: self.limiter.acquire(member_id, self.max_wait)

    def _client(self, endpoint: str, credentials, throttle, relocating_for: str | None = None) -> BitrixClient:
        """`relocating_for`: the member id whose renames the client follows (see relocated_endpoint)."""
        relocate = None
        if relocating_for is not None:
            relocate = lambda old, location: self.relocated_endpoint(relocating_for, old, location)  # noqa: E731
        return BitrixClient(
            endpoint,
            credentials,
            self.http,
            timeout=(self.settings.connect_timeout, self.settings.read_timeout),
            throttle=throttle,
            max_wait=self.max_wait,
            relocate=relocate,
        )


def _under(url: str, endpoint: str) -> bool:
    """Whether `url` is a method URL of `endpoint` (same scheme, host, port and path prefix)."""
    target, base = urlsplit(url), urlsplit(endpoint)
    return ((target.scheme, target.netloc.lower()) == (base.scheme, base.netloc.lower())
            and target.path.startswith(base.path if base.path.endswith("/") else base.path + "/"))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else "an unknown address"


def _unconfirmed(exc: OAuthError) -> BitrixError:
    return BitrixError("PORTAL_MOVED", f"The authorization server could not confirm the portal's address "
                       f"({exc.code}).", status=exc.status, method="app.info")

