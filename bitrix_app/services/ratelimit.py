"""A client-side leaky bucket per portal, shared by every process that talks to Bitrix24.

Bitrix24 counts HTTP requests per portal (and client IP) in a leaky bucket: each request adds 1,
the level drains at `per_second`, and a request that would lift it above `burst` gets
503 QUERY_LIMIT_EXCEEDED (reference 8.1). We keep the same bucket on our side so that web
workers, CLI runs and jobs on every host wait their turn instead of tripping the server's limit.

The state lives in the database (one `rate_limit_buckets` row per bucket, created or changed by
a single atomic upsert) or, when REDIS_URL is set, in Redis (one Lua script). Either way one reservation
is one round trip: it *reserves* a slot by adding 1 to the drained level and learns how long to
wait until that slot is inside the burst. No polling, and callers are served in arrival order.

Admission control: a caller says how long it may wait (`max_wait`). A reservation that would
wait longer is not made at all, and the caller gets `RateLimited` (HTTP 429/503 with
Retry-After in the web tier) instead of a sleeping thread. Web requests wait a few seconds at
most; CLI runs and jobs longer. Tab openings, whose AUTH_ID is not verified yet, first pass two
small budgets of their own (per portal, and per portal and client address), so a flood of
forged openings costs the portal's bucket at most that budget.
"""
from __future__ import annotations

import functools
import math
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from .database import SQLITE_CONNECT_ARGS, configure_sqlite
from .errors import BitrixError

# Keep one request of headroom below the server's burst: our clock and the server's are not the
# same clock, and a request that leaves late lands closer to the next one than we planned.
HEADROOM = 1
MAX_ADDRESS_LENGTH = 48  # keeps bucket keys within the 128 characters of rate_limit_buckets.key
MAX_REMEMBERED_RATES = 1024  # portals whose Enterprise-or-not a limiter keeps in memory

# Codes of RateLimited
PORTAL_BUSY = "PORTAL_BUSY"  # the portal's bucket is further ahead than the caller may wait
TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"  # an unverified-caller budget is used up


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

    def limit_for(self, max_wait: float | None) -> float | None:
        """The highest level a reservation may bring the bucket to when it may wait `max_wait`."""
        return None if max_wait is None else self.capacity + max(0.0, max_wait) * self.per_second


@dataclass(frozen=True)
class Slot:
    """The outcome of one reservation. Refused: nothing was added, `wait` is what it would have been."""

    granted: bool
    wait: float


class BucketStore(Protocol):
    def reserve(self, key: str, rate: Rate) -> float:
        """Count one request against the bucket `key`; return the seconds to wait before sending it."""

    def reserve_within(self, key: str, rate: Rate, max_wait: float | None) -> Slot:
        """Like `reserve`, but refuse (adding nothing) when the wait would exceed `max_wait`."""

    def release(self, key: str, rate: Rate) -> None:
        """Give back one reserved slot that was not used."""


class RateLimited(BitrixError):
    """No slot within the wait the caller allows; nothing was sent and nothing stays reserved."""

    STATUS = {PORTAL_BUSY: 503, TOO_MANY_REQUESTS: 429}
    DESCRIPTION = {
        PORTAL_BUSY: "The portal's request queue is longer than this request may wait.",
        TOO_MANY_REQUESTS: "Too many requests with a not yet verified authorization for this portal.",
    }

    def __init__(self, code: str, retry_after: float, clock: Callable[[], float] = time.time):
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(code, self.DESCRIPTION[code], status=self.STATUS[code],
                         reset_at=clock() + self.retry_after)


# --- the database store ------------------------------------------------------------------------

# One statement per reservation, in autocommit: create the row if needed, drain it to `now`, add
# `delta`, and (with a limit) only if the new level stays within it; RETURNING the new level, or
# no row when refused. The row's lock (PostgreSQL) or the database's write lock (SQLite) makes it
# atomic. psycopg prepares it on the server; sqlite3 keeps it in its statement cache.
_DRAINED = "{greatest}(0.0, b.level - {greatest}(0.0, {now} - b.updated) * {rate})"
_UPSERT = """INSERT INTO rate_limit_buckets AS b ("key", level, updated) VALUES ({key}, {greatest}({delta}, 0.0), {now})
ON CONFLICT ("key") DO UPDATE SET level = {greatest}(0.0, {drained} + {delta}), updated = {greatest}(b.updated, {now})
WHERE {limit} IS NULL OR {drained} + {delta} <= {limit}
RETURNING level"""
_LEVEL = """SELECT {drained} FROM rate_limit_buckets AS b WHERE "key" = {key}"""


def _statements(dialect: str) -> tuple[str, str]:
    if dialect == "postgresql":
        names = {"key": "%(key)s", "delta": "%(delta)s", "now": "%(now)s", "rate": "%(rate)s",
                 "limit": "%(limit)s::float8", "greatest": "GREATEST"}
    elif dialect == "sqlite":
        names = {"key": ":key", "delta": ":delta", "now": ":now", "rate": ":rate", "limit": ":limit",
                 "greatest": "max"}
    else:
        raise ValueError(f"The shared rate limiter supports PostgreSQL and SQLite, not {dialect}; set REDIS_URL.")
    drained = _DRAINED.format(**names)
    return _UPSERT.format(drained=drained, **names), _LEVEL.format(drained=drained, **names)


class DatabaseBuckets:
    """Buckets as `rate_limit_buckets` rows; a reservation is one SQL statement, one round trip.

    It runs on a small engine of its own (same database) in autocommit and without a pre-ping,
    on the DBAPI connection, so no ORM session, no BEGIN/COMMIT and no ping surround it."""

    def __init__(self, session_factory: sessionmaker, clock: Callable[[], float] = time.time):
        self.session_factory = session_factory
        self.clock = clock
        app_engine = session_factory.kw["bind"]
        self.dialect = app_engine.dialect.name
        self._upsert, self._level = _statements(self.dialect)
        self.engine = _limiter_engine(app_engine)

    def reserve(self, key: str, rate: Rate) -> float:
        return self.reserve_within(key, rate, None).wait

    def reserve_within(self, key: str, rate: Rate, max_wait: float | None) -> Slot:
        now = self.clock()
        params = {"key": key, "delta": 1.0, "now": now, "rate": float(rate.per_second),
                  "limit": rate.limit_for(max_wait)}
        row = self._execute(self._upsert, params)
        if row is not None:
            return Slot(True, rate.wait_for(row[0]))
        drained = self._execute(self._level, params)  # refused: how long it would have waited
        return Slot(False, rate.wait_for((drained[0] if drained else 0.0) + 1))

    def release(self, key: str, rate: Rate) -> None:
        self._execute(self._upsert, {"key": key, "delta": -1.0, "now": self.clock(),
                                     "rate": float(rate.per_second), "limit": None})

    def _execute(self, statement: str, params: dict, retry: bool = True):
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            if self.dialect == "postgresql":
                cursor.execute(statement, params, prepare=True)
            else:
                cursor.execute(statement, params)
            rows = cursor.fetchall()  # to the end: SQLite finishes the statement (and its lock) there
            cursor.close()
        except self.engine.dialect.loaded_dbapi.OperationalError:
            if not (retry and getattr(connection.driver_connection, "closed", False) is True):
                raise
            # A connection the database dropped (restart, idle timeout; no pre-ping here): once more
            # on a new one. At worst the lost attempt had counted, which only makes us slower.
            connection.invalidate()
            return self._execute(statement, params, retry=False)
        finally:
            connection.close()
        return rows[0] if rows else None


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _forget_inherited_engines() -> None:
    """In a forked child: never touch the parent's connections (closing one would end it for both)."""
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


os.register_at_fork(after_in_child=_forget_inherited_engines)


def _limiter_engine(app_engine: Engine) -> Engine:
    """One limiter engine per database and process."""
    url = app_engine.url.render_as_string(hide_password=False)
    with _engines_lock:
        if url not in _engines:
            options = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None, "pool_pre_ping": False}
            if app_engine.dialect.name == "postgresql":
                # The connection used last goes out next, with the statement psycopg prepared on it
                # (per connection); the others a burst of workers opened stay idle.
                options["pool_use_lifo"] = True
            if app_engine.dialect.name == "sqlite":
                options["connect_args"] = dict(SQLITE_CONNECT_ARGS)
            _engines[url] = create_engine(app_engine.url, **options)
            configure_sqlite(_engines[url])
            event.listen(_engines[url], "connect", _without_waiting_for_the_disk)
        return _engines[url]


def _without_waiting_for_the_disk(dbapi_connection, _record) -> None:
    """A reservation's commit need not wait for the disk: after a crash the buckets would only have
    forgotten the last instants of traffic, which the server's own limit still covers."""
    cursor = dbapi_connection.cursor()
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: no fsync per commit
    else:
        cursor.execute("SET synchronous_commit TO off")
    cursor.close()


# --- the Redis store ---------------------------------------------------------------------------

# Runs inside Redis, so read-drain-add-write is atomic; Redis's own clock serves every host.
# ARGV: rate per second, delta (+1 reserve, -1 release), limit ('' = none). Returns
# {granted, level}: the new level, or the level a refused reservation would have reached.
ADD_SCRIPT = """
local rate, delta, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local stored = redis.call('HMGET', KEYS[1], 'level', 'updated')
local level = tonumber(stored[1]) or 0
local updated = tonumber(stored[2]) or now
level = math.max(0, math.max(0, level - math.max(0, now - updated) * rate) + delta)
if limit and level > limit then
  return {0, string.format('%.6f', level)}
end
updated = math.max(now, updated)
redis.call('HSET', KEYS[1], 'level', string.format('%.6f', level), 'updated', string.format('%.6f', updated))
redis.call('PEXPIRE', KEYS[1], math.ceil((level / rate + 60) * 1000))
return {1, string.format('%.6f', level)}
"""


class RedisBuckets:
    """Buckets as Redis hashes `bitrix:rate:<key>`, expiring once drained and idle for a minute."""

    def __init__(self, redis_url: str):
        import redis

        self.redis = redis.Redis.from_url(redis_url)
        self._add = self.redis.register_script(ADD_SCRIPT)

    def reserve(self, key: str, rate: Rate) -> float:
        return self.reserve_within(key, rate, None).wait

    def reserve_within(self, key: str, rate: Rate, max_wait: float | None) -> Slot:
        limit = rate.limit_for(max_wait)
        granted, level = self._run(key, rate, +1, "" if limit is None else repr(limit))
        return Slot(granted, rate.wait_for(level))

    def release(self, key: str, rate: Rate) -> None:
        self._run(key, rate, -1, "")

    def _run(self, key: str, rate: Rate, delta: int, limit: str) -> tuple[bool, float]:
        granted, level = self._add(keys=[f"bitrix:rate:{key}"], args=[rate.per_second, delta, limit])
        return bool(granted), float(level)


# --- the limiter -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One bucket a request has to pass: its key, rate, how long it may wait, the code if not."""

    key: str
    rate: Rate
    max_wait: float | None
    refusal: str


class RateLimiter:
    """`acquire(member_id, max_wait)` waits for one more request to that portal to stay within its
    rate, or raises RateLimited when that would take longer than `max_wait` seconds."""

    def __init__(
        self,
        store: BucketStore,
        default: Rate,
        enterprise: Rate | None = None,
        enterprise_portals: frozenset[str] = frozenset(),
        domain_of: Callable[[str], str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        unverified: Rate | None = None,
        unverified_per_address: Rate | None = None,
    ):
        self.store = store
        self.default = default
        self.enterprise = enterprise or default
        # Member ids or domains; domains are resolved through `domain_of` once per portal.
        self.enterprise_portals = enterprise_portals
        self.domain_of = domain_of
        self.sleep = sleep
        # Budgets for calls made with a token nobody has verified yet (None: no such budget).
        self.unverified = unverified
        self.unverified_per_address = unverified_per_address
        # Enterprise or not, per portal: resolving a domain costs a database read. Bounded, so a
        # process serving thousands of portals keeps only the recent ones.
        self._enterprise = functools.lru_cache(maxsize=MAX_REMEMBERED_RATES)(self._is_enterprise)

    def acquire(self, member_id: str, max_wait: float | None = None) -> float:
        """Wait for a slot; returns the seconds waited. `max_wait` None: as long as it takes."""
        return self._admit([self._portal_step(member_id, max_wait)])

    def acquire_unverified(self, member_id: str, client_address: str, max_wait: float | None = None) -> float:
        """Like `acquire`, for a call with a token not verified yet (a tab opening's AUTH_ID):
        first within the unverified budgets, which never wait, then the portal's bucket."""
        steps = []
        if self.unverified_per_address is not None:
            address = str(client_address or "unknown")[:MAX_ADDRESS_LENGTH]
            steps.append(Step(f"unverified:{member_id}:{address}", self.unverified_per_address, 0, TOO_MANY_REQUESTS))
        if self.unverified is not None:
            steps.append(Step(f"unverified:{member_id}", self.unverified, 0, TOO_MANY_REQUESTS))
        return self._admit(steps + [self._portal_step(member_id, max_wait)])

    def rate_for(self, member_id: str) -> Rate:
        if not self.enterprise_portals:
            return self.default
        return self.enterprise if self._enterprise(member_id) else self.default

    def _portal_step(self, member_id: str, max_wait: float | None) -> Step:
        return Step(f"portal:{member_id}", self.rate_for(member_id), max_wait, PORTAL_BUSY)

    def _admit(self, steps: list[Step]) -> float:
        """Reserve a slot in every step's bucket, or in none: a refused step gives back the
        slots the earlier steps took. Then sleep until the latest slot."""
        taken: list[Step] = []
        wait = 0.0
        for step in steps:
            slot = self.store.reserve_within(step.key, step.rate, step.max_wait)
            if not slot.granted:
                for done in taken:
                    self.store.release(done.key, done.rate)
                raise RateLimited(step.refusal, slot.wait - (step.max_wait or 0))
            taken.append(step)
            wait = max(wait, slot.wait)
        if wait > 0:
            self.sleep(wait)
        return wait

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
        unverified=_rate_or_none(settings.unverified_rate_per_second, settings.unverified_burst),
        unverified_per_address=_rate_or_none(settings.unverified_address_rate_per_second,
                                             settings.unverified_address_burst),
    )


def _rate_or_none(per_second: float, burst: int) -> Rate | None:
    """A budget from its settings; a rate of 0 turns that budget off."""
    return Rate(per_second, burst) if per_second > 0 else None
