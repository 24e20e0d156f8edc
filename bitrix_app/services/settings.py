"""Settings the service layer needs, lifted out of the Flask config into a plain object."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


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
    redis_url: str | None = None

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
            redis_url=config.get("REDIS_URL"),
        )

    @property
    def token_url(self) -> str:
        return f"{self.oauth_server}/oauth/token/"

    @property
    def oauth_rest_url(self) -> str:
        return f"{self.oauth_server}/rest/"

    def is_acceptable_url(self, url: str) -> bool:
        """Portal and OAuth endpoints must be https, unless insecure (sandbox/test) mode is on."""
        parts = urlsplit(url or "")
        if not parts.netloc:
            return False
        if parts.scheme == "https":
            return True
        return self.allow_insecure and parts.scheme == "http"
