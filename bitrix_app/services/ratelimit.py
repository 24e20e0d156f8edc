"""A client-side leaky bucket per portal, shared by every process that talks to Bitrix24.

Bitrix24 counts HTTP requests per portal (and client IP) in a leaky bucket: each request adds 1,
the level drains at `per_second`, and a request that would lift it above `burst` gets
503 QUERY_LIMIT_EXCEEDED (reference 8.1). We keep the same bucket on our side so that web
workers, CLI runs and jobs on every host wait their turn instead of tripping the server's limit.

The state lives in the database (one `rate_limit_buckets` row per portal, changed by a single
atomic UPDATE) or, when REDIS_URL is set, in Redis (one Lua script). Either way one acquire is
one round trip: it *reserves* a slot by adding 1 to the drained level and learns how long to
wait until that slot is inside the burst. No polling, and callers are served in arrival order.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from sqlalchemy import case, literal, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import sessionmaker

from ..models import RateLimitBucket

# Keep one request of headroom below the server's burst: our clock and the server's are not the
# same clock, and a request that leaves late lands closer to the next one than we planned.
HEADROOM = 1


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int

    @property
    def capacity(self) -> float:
        return max(1, self.burst - HEADROOM)

    def wait_for(self, level: float) -> float:
        """Seconds until a request that brought the bucket to `level` fits under the capacity."""
        return max(0.0, (level - self.capacity) / self.per_second)


class BucketStore(Protocol):
    def reserve(self, key: str, rate: Rate) -> float:
        """Count one request against the bucket `key`; return the seconds to wait before sending it."""


class DatabaseBuckets:
    """Buckets as `RateLimitBucket` rows. The UPDATE's row lock makes each reservation atomic."""

    def __init__(self, session_factory: sessionmaker, clock: Callable[[], float] = time.time):
        self.session_factory = session_factory
        self.clock = clock

    def reserve(self, key: str, rate: Rate) -> float:
        now = self.clock()
        with self.session_factory() as session, session.begin():
            level = session.execute(self._add_one(key, rate, now)).scalar()
            if level is None:  # first request to this portal: create the row, then count
                session.execute(self._create_row(session, key, now))
                level = session.execute(self._add_one(key, rate, now)).scalar()
        return rate.wait_for(level)

    @staticmethod
    def _add_one(key: str, rate: Rate, now: float):
        bucket = RateLimitBucket
        elapsed = case((bucket.updated < now, literal(now) - bucket.updated), else_=0.0)
        drained = bucket.level - elapsed * rate.per_second
        return (
            update(bucket)
            .where(bucket.key == key)
            .values(
                level=case((drained > 0, drained), else_=0.0) + 1,
                updated=case((bucket.updated > now, bucket.updated), else_=now),
            )
            .returning(bucket.level)
        )

    @staticmethod
    def _create_row(session, key: str, now: float):
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        return dialect.insert(RateLimitBucket).values(key=key, level=0.0, updated=now).on_conflict_do_nothing()


# Runs inside Redis, so read-drain-add-write is atomic; Redis's own clock serves every host.
RESERVE_SCRIPT = """
local rate = tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local stored = redis.call('HMGET', KEYS[1], 'level', 'updated')
local level = tonumber(stored[1]) or 0
local updated = tonumber(stored[2]) or now
level = math.max(0, level - math.max(0, now - updated) * rate) + 1
updated = math.max(now, updated)
redis.call('HSET', KEYS[1], 'level', string.format('%.6f', level), 'updated', string.format('%.6f', updated))
redis.call('PEXPIRE', KEYS[1], math.ceil((level / rate + 60) * 1000))
return string.format('%.6f', level)
"""


class RedisBuckets:
    """Buckets as Redis hashes `bitrix:rate:<key>`, expiring once drained and idle for a minute."""

    def __init__(self, redis_url: str):
        import redis

        self.redis = redis.Redis.from_url(redis_url)
        self._reserve = self.redis.register_script(RESERVE_SCRIPT)

    def reserve(self, key: str, rate: Rate) -> float:
        level = float(self._reserve(keys=[f"bitrix:rate:{key}"], args=[rate.per_second]))
        return rate.wait_for(level)


class RateLimiter:
    """`acquire(member_id)` blocks until one more request to that portal stays within its rate."""

    def __init__(
        self,
        store: BucketStore,
        default: Rate,
        enterprise: Rate | None = None,
        enterprise_portals: frozenset[str] = frozenset(),
        domain_of: Callable[[str], str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.store = store
        self.default = default
        self.enterprise = enterprise or default
        # Member ids or domains; domains are resolved through `domain_of` once per portal.
        self.enterprise_portals = enterprise_portals
        self.domain_of = domain_of
        self.sleep = sleep
        self._rates: dict[str, Rate] = {}
        self._lock = threading.Lock()

    def acquire(self, member_id: str) -> float:
        """Wait for a slot; returns the seconds waited."""
        wait = self.store.reserve(f"portal:{member_id}", self.rate_for(member_id))
        if wait > 0:
            self.sleep(wait)
        return wait

    def rate_for(self, member_id: str) -> Rate:
        with self._lock:
            if member_id not in self._rates:
                self._rates[member_id] = self.enterprise if self._is_enterprise(member_id) else self.default
            return self._rates[member_id]

    def _is_enterprise(self, member_id: str) -> bool:
        if not self.enterprise_portals:
            return False
        if member_id in self.enterprise_portals:
            return True
        return self.domain_of is not None and self.domain_of(member_id) in self.enterprise_portals


def limiter_for(bitrix) -> RateLimiter | None:
    """The limiter a `Bitrix` uses: Redis when configured, else the database; None if the rate is 0."""
    settings = bitrix.settings
    if settings.rate_per_second <= 0:
        return None
    store = RedisBuckets(settings.redis_url) if settings.redis_url else DatabaseBuckets(bitrix.session_factory)
    return RateLimiter(
        store,
        default=Rate(settings.rate_per_second, settings.rate_burst),
        enterprise=Rate(settings.enterprise_rate_per_second, settings.enterprise_rate_burst),
        enterprise_portals=frozenset(settings.enterprise_portals),
        domain_of=lambda member_id: bitrix.portal(member_id).domain,
    )
