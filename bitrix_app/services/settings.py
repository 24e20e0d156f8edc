"""Settings the service layer needs, lifted out of the Flask config into a plain object."""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..gateway.addresses import (
    ADDRESS_NOT_ALLOWED,
    HOST_NOT_RESOLVED,
    AddressRefused,
    Network,
    classify,
    parse_networks,
    resolve_checked,
)


@dataclass(frozen=True)
class BitrixSettings:
    client_id: str
    client_secret: str
    oauth_server: str = "https://oauth.bitrix.info"
    token_method: str = "GET"
    allow_insecure: bool = False
    public_url: str = ""
    encryption_keys: tuple[str, ...] = ()
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    rate_per_second: float = 2.0
    rate_burst: int = 50
    enterprise_rate_per_second: float = 5.0
    enterprise_rate_burst: int = 250
    enterprise_portals: tuple[str, ...] = ()  # member ids or domains paced at the Enterprise rate
    web_max_wait: float = 3.0  # seconds a web request may wait for a slot
    job_max_wait: float = 120.0  # seconds a CLI run, plan or job may wait for a slot
    unverified_rate_per_second: float = 1.0  # tab openings' unverified calls, per portal
    unverified_burst: int = 30
    unverified_address_rate_per_second: float = 0.5  # the same, per portal and client address
    unverified_address_burst: int = 10
    # Where connector endpoint URLs may point besides public addresses: the gateway's own list.
    endpoint_networks: tuple[Network, ...] = ()
    redis_url: str | None = None
    # Resolves portal host names for `is_acceptable_url`; tests inject a fake one.
    resolver: Callable[..., list] = field(default=socket.getaddrinfo, repr=False, compare=False)

    @classmethod
    def from_config(cls, config) -> "BitrixSettings":
        return cls(
            client_id=config["BITRIX_CLIENT_ID"],
            client_secret=config["BITRIX_CLIENT_SECRET"],
            oauth_server=config["BITRIX_OAUTH_SERVER"].rstrip("/"),
            token_method=config["BITRIX_TOKEN_METHOD"],
            allow_insecure=bool(config["BITRIX_ALLOW_INSECURE"]),
            public_url=config["APP_PUBLIC_URL"].rstrip("/"),
            encryption_keys=tuple(config["TOKEN_ENCRYPTION_KEYS"]),
            rate_per_second=float(config.get("BITRIX_RATE_PER_SECOND", 2)),
            rate_burst=int(config.get("BITRIX_RATE_BURST", 50)),
            enterprise_rate_per_second=float(config.get("BITRIX_ENTERPRISE_RATE_PER_SECOND", 5)),
            enterprise_rate_burst=int(config.get("BITRIX_ENTERPRISE_RATE_BURST", 250)),
            enterprise_portals=tuple(config.get("BITRIX_ENTERPRISE_PORTALS") or ()),
            web_max_wait=float(config.get("BITRIX_WEB_MAX_WAIT", 3)),
            job_max_wait=float(config.get("BITRIX_JOB_MAX_WAIT", 120)),
            unverified_rate_per_second=float(config.get("BITRIX_UNVERIFIED_RATE_PER_SECOND", 1)),
            unverified_burst=int(config.get("BITRIX_UNVERIFIED_BURST", 30)),
            unverified_address_rate_per_second=float(config.get("BITRIX_UNVERIFIED_ADDRESS_RATE_PER_SECOND", 0.5)),
            unverified_address_burst=int(config.get("BITRIX_UNVERIFIED_ADDRESS_BURST", 10)),
            endpoint_networks=parse_networks(config.get("GATEWAY_ALLOWED_NETWORKS")),
            redis_url=config.get("REDIS_URL"),
        )

    @property
    def token_url(self) -> str:
        return f"{self.oauth_server}/oauth/token/"

    @property
    def oauth_rest_url(self) -> str:
        return f"{self.oauth_server}/rest/"

    def is_acceptable_url(self, url: str) -> bool:
        """Portal and OAuth endpoints must be https on public addresses, unless insecure (sandbox/test)
        mode is on. Host names are resolved, and every address they resolve to must be public."""
        return endpoint_problem(url, allow_insecure=self.allow_insecure, resolver=self.resolver) is None


def endpoint_problem(url: str, *, allow_insecure: bool = False,
                     resolver: Callable[..., list] | None = None) -> str | None:
    """Why `url` cannot be a portal or OAuth endpoint, as a phrase ("is not https"); None when it can.

    IP addresses written in the URL are judged as written, in any form a resolver accepts (127.1,
    2130706433). Host names are judged only with a `resolver`, by every address it returns: that is
    done once per installation, while the configuration check at start must not depend on DNS.
    """
    parts = urlsplit(url or "")
    if not parts.netloc or not parts.hostname:
        return "is not an absolute URL"
    if allow_insecure:
        return None if parts.scheme in ("http", "https") else "is neither an http:// nor an https:// URL"
    if parts.scheme != "https":
        return "is not an https:// URL"
    return _host_problem(parts.hostname, _port(parts), resolver)


def _port(parts) -> int:
    try:
        return parts.port or 443
    except ValueError:  # not a number, or out of range
        return 443


def _host_problem(host: str, port: int, resolver: Callable[..., list] | None) -> str | None:
    name = host.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always the loopback interface
        return "names the loopback interface"
    address = _numeric_address(host)
    if address is not None:
        reason = classify(address)
        return f"is a {reason} address ({host})" if reason else None
    if resolver is None:
        return None
    try:
        resolve_checked(host, port, resolver=resolver)
    except AddressRefused as refused:
        if refused.code == ADDRESS_NOT_ALLOWED:
            return "resolves to an address that is not public"
        if refused.code == HOST_NOT_RESOLVED:
            return "could not be resolved"
        return "has an invalid host name"
    return None


def _numeric_address(host: str):
    """The IP address `host` spells, or None for a host name. AI_NUMERICHOST never touches the network."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        answers = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        return None
    return ipaddress.ip_address(answers[0][4][0])
