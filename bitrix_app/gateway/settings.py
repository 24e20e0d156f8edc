"""The gateway's settings (`GATEWAY_*` in the README), lifted out of the Flask config."""
from __future__ import annotations

from dataclasses import dataclass

from .addresses import Network, parse_networks
from .kinds import KINDS, Limits

DEFAULT_KINDS = ("postgresql", "mysql")


@dataclass(frozen=True)
class GatewaySettings:
    public_url: str
    kinds: tuple[str, ...] = DEFAULT_KINDS
    allowed_networks: tuple[Network, ...] = ()
    max_rows: int = 1_000_000
    connect_timeout: float = 5.0
    statement_timeout: float = 50.0
    pool_size: int = 2
    sqlite_dir: str | None = None
    cache_seconds: float = 300.0
    redis_url: str | None = None

    @classmethod
    def from_config(cls, config) -> "GatewaySettings":
        return cls(
            public_url=str(config["APP_PUBLIC_URL"]).rstrip("/"),
            kinds=parse_kinds(config.get("GATEWAY_KINDS")),
            allowed_networks=parse_networks(config.get("GATEWAY_ALLOWED_NETWORKS")),
            max_rows=int(config.get("GATEWAY_MAX_ROWS") or 1_000_000),
            connect_timeout=float(config.get("GATEWAY_CONNECT_TIMEOUT") or 5),
            statement_timeout=float(config.get("GATEWAY_STATEMENT_TIMEOUT") or 50),
            pool_size=int(config.get("GATEWAY_POOL_SIZE") or 2),
            sqlite_dir=config.get("GATEWAY_SQLITE_DIR") or None,
            cache_seconds=float(config.get("GATEWAY_CACHE_SECONDS") or 300),
            redis_url=config.get("REDIS_URL") or None,
        )

    @property
    def limits(self) -> Limits:
        return Limits(self.connect_timeout, self.statement_timeout, self.pool_size)


def parse_kinds(value) -> tuple[str, ...]:
    """`postgresql,mysql` -> ("postgresql", "mysql"); an unknown kind is a configuration error."""
    if value is None or value == "":
        return DEFAULT_KINDS
    names = [name.strip().lower() for name in (value.split(",") if isinstance(value, str) else value)]
    names = [name for name in names if name]
    unknown = [name for name in names if name not in KINDS]
    if unknown:
        raise ValueError(f"GATEWAY_KINDS names unknown database kinds: {', '.join(unknown)} "
                         f"(known: {', '.join(KINDS)}).")
    return tuple(dict.fromkeys(names))
