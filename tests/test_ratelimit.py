"""The client-side leaky bucket: its arithmetic, both stores, and two processes sharing one bucket."""
import multiprocessing
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import redis
from sqlalchemy import event

import bitrix_app
from bitrix_app.services import ratelimit
from bitrix_app.services.ratelimit import (
    PORTAL_BUSY, TOO_MANY_REQUESTS, DatabaseBuckets, Rate, RateLimited, RateLimiter, RedisBuckets, limiter_for,
)

REDIS_URL = "redis://127.0.0.1:6379/15"


def redis_available(url: str = REDIS_URL) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def on_ci(environ) -> bool:
    return environ.get("CI", "").strip().lower() not in ("", "0", "false")


def require_redis(url: str = REDIS_URL, environ=os.environ) -> None:
    """Skip a Redis test only on a local run without Redis; on CI (CI set) Redis must be there."""
    if redis_available(url):
        return
    if on_ci(environ):
        pytest.fail(f"Redis is not reachable at {url}, but CI is set: CI must run the Redis tests.")
    pytest.skip(f"Redis is not running at {url} (start redis-server to run this test; on CI it fails instead)")


def test_missing_redis_fails_on_ci_and_skips_only_locally():
    closed_port = "redis://127.0.0.1:1/15"
    with pytest.raises(pytest.fail.Exception, match="CI must run the Redis tests"):
        require_redis(closed_port, {"CI": "true"})
    with pytest.raises(pytest.skip.Exception, match="Redis is not running"):
        require_redis(closed_port, {})


class ManualClock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_bucket_lets_the_burst_through_then_spaces_requests(bitrix):
    clock = ManualClock()
    buckets = DatabaseBuckets(bitrix.session_factory, clock)
    rate = Rate(per_second=2, burst=5)  # capacity 4: one request of headroom

    waits = [buckets.reserve("portal:a", rate) for _ in range(6)]

    assert waits[:4] == [0, 0, 0, 0]
    assert waits[4] == pytest.approx(0.5)
    assert waits[5] == pytest.approx(1.0)  # reservations queue up behind each other


def test_bucket_drains_with_time(bitrix):
    clock = ManualClock()
    buckets = DatabaseBuckets(bitrix.session_factory, clock)
    rate = Rate(per_second=2, burst=5)
    for _ in range(4):
        buckets.reserve("portal:a", rate)

    clock.now += 1.0  # two requests drained

    assert buckets.reserve("portal:a", rate) == 0
    assert buckets.reserve("portal:a", rate) == 0
    assert buckets.reserve("portal:a", rate) == pytest.approx(0.5)


def test_buckets_are_per_portal(bitrix):
    buckets = DatabaseBuckets(bitrix.session_factory, ManualClock())
    rate = Rate(per_second=1, burst=2)
    assert buckets.reserve("portal:a", rate) == 0
    assert buckets.reserve("portal:a", rate) > 0
    assert buckets.reserve("portal:b", rate) == 0


def test_redis_bucket_has_the_same_arithmetic():
    require_redis()
    buckets = RedisBuckets(REDIS_URL)
    key = f"test:{time.time_ns()}"
    rate = Rate(per_second=1, burst=3)

    waits = [buckets.reserve(key, rate) for _ in range(4)]

    assert waits[:2] == [0, 0]
    assert waits[2] == pytest.approx(1.0, abs=0.05)
    assert waits[3] == pytest.approx(2.0, abs=0.05)


def test_limiter_sleeps_for_the_reserved_wait(bitrix):
    slept = []
    limiter = RateLimiter(DatabaseBuckets(bitrix.session_factory, ManualClock()), Rate(1, 2), sleep=slept.append)
    limiter.acquire("member")
    limiter.acquire("member")
    assert slept == [pytest.approx(1.0)]


def test_enterprise_portals_get_their_rate_by_member_id_or_domain(bitrix):
    domains = {"m1": "big.bitrix24.com", "m2": "small.bitrix24.com", "m3": "other.bitrix24.com"}
    limiter = RateLimiter(
        DatabaseBuckets(bitrix.session_factory), Rate(2, 50), Rate(5, 250),
        enterprise_portals=frozenset({"big.bitrix24.com", "m3"}), domain_of=domains.__getitem__,
    )
    assert limiter.rate_for("m1") == Rate(5, 250)
    assert limiter.rate_for("m2") == Rate(2, 50)
    assert limiter.rate_for("m3") == Rate(5, 250)


def test_a_limiter_resolves_a_portal_s_domain_once_and_keeps_only_recent_portals(bitrix, monkeypatch):
    monkeypatch.setattr(ratelimit, "MAX_REMEMBERED_RATES", 2)
    looked_up = []

    def domain_of(member_id):
        looked_up.append(member_id)
        return f"{member_id}.bitrix24.com"

    limiter = RateLimiter(DatabaseBuckets(bitrix.session_factory), Rate(2, 50), Rate(5, 250),
                          enterprise_portals=frozenset({"m1.bitrix24.com"}), domain_of=domain_of)
    for member_id in ("m1", "m1", "m2", "m1", "m3", "m2"):
        limiter.rate_for(member_id)

    assert looked_up == ["m1", "m2", "m3", "m2"]  # m2 was the least recently used when m3 came
    assert limiter.rate_for("m1") == Rate(5, 250) and limiter.rate_for("m3") == Rate(2, 50)


def test_without_enterprise_portals_no_portal_is_looked_up(bitrix):
    limiter = RateLimiter(DatabaseBuckets(bitrix.session_factory), Rate(2, 50), Rate(5, 250),
                          domain_of=lambda member_id: pytest.fail("no domain needed"))
    assert {limiter.rate_for(f"m{n}") for n in range(100)} == {Rate(2, 50)}


def test_limiter_follows_the_configuration(bitrix):
    assert isinstance(limiter_for(bitrix).store, DatabaseBuckets)
    with_redis = type("B", (), {"settings": replace(bitrix.settings, redis_url=REDIS_URL),
                                "session_factory": bitrix.session_factory})()
    assert isinstance(limiter_for(with_redis).store, RedisBuckets)
    without = type("B", (), {"settings": replace(bitrix.settings, rate_per_second=0),
                             "session_factory": bitrix.session_factory})()
    assert limiter_for(without) is None


# --- two processes, one bucket ----------------------------------------------------------------

PROCESSES = 2
CALLS_PER_PROCESS = 15
RATE, BURST = 20.0, 10  # fast, so the test is quick; the point is the sharing, not the numbers


def worker(settings, database_url, member_id, ready, start, results):
    from bitrix_app.services.bitrix import Bitrix
    from bitrix_app.services.database import make_engine, make_session_factory

    bitrix = Bitrix(settings, make_session_factory(make_engine(database_url)))  # limiter from settings
    client = bitrix.client(member_id)
    client.max_rate_limit_retries = 0  # a 503 must surface, not be retried away
    ready.put(True)
    start.wait(timeout=30)
    failures = 0
    for _ in range(CALLS_PER_PROCESS):
        try:
            client.call("user.admin")
        except Exception:  # count, keep going
            failures += 1
    results.put(failures)


def run_two_processes(settings, database_url, member_id) -> tuple[list[int], float]:
    context = multiprocessing.get_context("spawn")
    ready, start, results = context.Queue(), context.Event(), context.Queue()
    processes = [context.Process(target=worker, args=(settings, database_url, member_id, ready, start, results))
                 for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    for _ in processes:  # both imported and connected, so they really run side by side
        ready.get(timeout=60)
    began = time.monotonic()
    start.set()
    failures = [results.get(timeout=60) for _ in processes]
    elapsed = time.monotonic() - began
    for process in processes:
        process.join(timeout=30)
    return failures, elapsed


@pytest.mark.parametrize("store", ["database", "redis"])
def test_two_processes_share_one_bucket_and_never_see_503(fake, installed_portal, bitrix, database_url, store):
    if store == "redis":
        require_redis()
    fake.config.rate_limit = True
    fake.config.rate_per_second, fake.config.burst = RATE, BURST
    settings = replace(bitrix.settings, rate_per_second=RATE, rate_burst=BURST,
                       redis_url=REDIS_URL if store == "redis" else None)
    before = fake.count_requests(installed_portal, "user.admin")

    failures, elapsed = run_two_processes(settings, database_url, installed_portal.member_id)

    assert failures == [0, 0]
    assert fake.count_503(installed_portal) == 0
    total = PROCESSES * CALLS_PER_PROCESS
    assert fake.count_requests(installed_portal, "user.admin") - before == total
    # The processes waited for each other: the burst goes at once, the rest at the rate.
    assert elapsed >= (total - BURST) / RATE * 0.9


def test_without_a_shared_bucket_the_same_load_trips_the_limit(fake, installed_portal, bitrix):
    """The control for the test above: the fake's limit is real, so pacing is what avoided it."""
    fake.config.rate_limit = True
    fake.config.rate_per_second, fake.config.burst = RATE, BURST
    client = bitrix._client(installed_portal.client_endpoint,
                            bitrix.client(installed_portal.member_id).credentials, None)  # no member: unpaced
    client.max_rate_limit_retries = 0
    outcomes = []
    for _ in range(PROCESSES * CALLS_PER_PROCESS):
        try:
            client.call("user.admin")
            outcomes.append("ok")
        except Exception as exc:
            outcomes.append(getattr(exc, "code", "error"))
    assert "QUERY_LIMIT_EXCEEDED" in outcomes
    assert fake.count_503(installed_portal) > 0


# --- admission control: a cap on the wait, release, unverified budgets -----------------------------

def redis_store_or_skip():
    require_redis()
    return RedisBuckets(REDIS_URL)


def stores(bitrix, store: str, clock):
    """The store under test; Redis keeps its own clock, so its tests use a rate too slow to drain."""
    return redis_store_or_skip() if store == "redis" else DatabaseBuckets(bitrix.session_factory, clock)


def unique_key(name: str) -> str:
    return f"test:{name}:{time.time_ns()}"  # Redis keeps keys between tests


SLOW = Rate(per_second=0.01, burst=3)  # capacity 2; one more request waits 100 s


@pytest.mark.parametrize("store", ["database", "redis"])
def test_a_reservation_beyond_the_cap_is_refused_and_adds_nothing(bitrix, store):
    buckets, key = stores(bitrix, store, ManualClock()), unique_key("cap")
    assert [buckets.reserve_within(key, SLOW, 0).granted for _ in range(2)] == [True, True]

    refused = buckets.reserve_within(key, SLOW, 50)
    granted = buckets.reserve_within(key, SLOW, 150)

    assert (refused.granted, refused.wait) == (False, pytest.approx(100, abs=0.5))
    # The refusal left the level alone: the next slot is still the third one, 100 s away.
    assert (granted.granted, granted.wait) == (True, pytest.approx(100, abs=0.5))


@pytest.mark.parametrize("store", ["database", "redis"])
def test_a_released_slot_is_free_again(bitrix, store):
    buckets, key = stores(bitrix, store, ManualClock()), unique_key("release")
    for _ in range(3):
        buckets.reserve(key, SLOW)

    buckets.release(key, SLOW)

    assert buckets.reserve(key, SLOW) == pytest.approx(100, abs=0.5)  # the third slot, not a fourth


def test_release_never_takes_the_level_below_zero(bitrix):
    buckets = DatabaseBuckets(bitrix.session_factory, ManualClock())
    buckets.reserve("portal:a", Rate(1, 3))
    for _ in range(3):
        buckets.release("portal:a", Rate(1, 3))
    assert [buckets.reserve_within("portal:a", Rate(1, 3), 0).granted for _ in range(3)] == [True, True, False]


def test_the_limiter_refuses_instead_of_sleeping_past_the_cap(bitrix):
    slept = []
    limiter = RateLimiter(DatabaseBuckets(bitrix.session_factory, ManualClock()), Rate(1, 3), sleep=slept.append)
    limiter.acquire("member", max_wait=3)
    limiter.acquire("member", max_wait=3)
    assert limiter.acquire("member", max_wait=3) == pytest.approx(1.0)  # within the cap: it sleeps

    with pytest.raises(RateLimited) as refused:
        limiter.acquire("member", max_wait=0.5)  # would wait 2 s

    assert (refused.value.code, refused.value.status, refused.value.retry_after) == (PORTAL_BUSY, 503, 2)
    assert slept == [pytest.approx(1.0)]
    assert limiter.acquire("member") == pytest.approx(2.0)  # no cap (a job): it waits; nothing was left reserved


def unverified_limiter(bitrix, portal: Rate = Rate(1, 50)) -> RateLimiter:
    """Per address 2 calls at once, per portal 4, then 1/s each; the store's clock stands still."""
    return RateLimiter(DatabaseBuckets(bitrix.session_factory, ManualClock()), portal, sleep=lambda _: None,
                       unverified=Rate(1, 5), unverified_per_address=Rate(1, 3))


def test_unverified_calls_are_refused_per_address_before_they_touch_the_portals_bucket(bitrix):
    limiter = unverified_limiter(bitrix)
    for _ in range(2):
        limiter.acquire_unverified("member", "198.51.100.7", max_wait=3)

    with pytest.raises(RateLimited) as refused:
        limiter.acquire_unverified("member", "198.51.100.7", max_wait=3)

    assert (refused.value.code, refused.value.status, refused.value.retry_after) == (TOO_MANY_REQUESTS, 429, 1)
    limiter.acquire_unverified("member", "198.51.100.8", max_wait=3)  # another address still gets in
    # The portal's bucket counted the three admitted calls only: 46 slots are left of 49.
    assert [limiter.store.reserve_within("portal:member", Rate(1, 50), 0).granted for _ in range(47)] == [True] * 46 + [False]


def test_the_portals_unverified_budget_caps_every_address_together(bitrix):
    limiter = unverified_limiter(bitrix)
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"):
        limiter.acquire_unverified("member", address, max_wait=3)
    with pytest.raises(RateLimited):
        limiter.acquire_unverified("member", "192.0.2.5", max_wait=3)
    limiter.acquire_unverified("other-member", "192.0.2.5", max_wait=3)  # another portal has its own


def test_a_refused_portal_slot_gives_the_unverified_slots_back(bitrix):
    limiter = unverified_limiter(bitrix, portal=Rate(1, 3))
    buckets = limiter.store
    for _ in range(2):
        buckets.reserve("portal:member", Rate(1, 3))  # the portal's bucket is full

    with pytest.raises(RateLimited) as refused:
        limiter.acquire_unverified("member", "192.0.2.1", max_wait=0.5)

    assert refused.value.code == PORTAL_BUSY
    # Both unverified budgets are untouched: the address still has its two slots.
    assert buckets.reserve_within("unverified:member:192.0.2.1", Rate(1, 3), 0).granted
    assert buckets.reserve_within("unverified:member:192.0.2.1", Rate(1, 3), 0).granted
    assert not buckets.reserve_within("unverified:member:192.0.2.1", Rate(1, 3), 0).granted


def test_the_unverified_budgets_follow_the_configuration(bitrix):
    limiter = limiter_for(type("B", (), {"settings": replace(bitrix.settings, unverified_rate_per_second=0.25,
                                                                unverified_burst=7,
                                                                unverified_address_rate_per_second=0),
                                         "session_factory": bitrix.session_factory})())
    assert limiter.unverified == Rate(0.25, 7)
    assert limiter.unverified_per_address is None  # a rate of 0 turns that budget off


# --- the wait cap is the call site's: web requests briefly, commands and scripts longer ---------------

def test_commands_wait_for_the_slot_the_web_tier_would_refuse(runner, bitrix, installed_portal, monkeypatch):
    slept = []
    monkeypatch.setattr(bitrix.limiter, "sleep", slept.append)
    member_id = installed_portal.member_id
    for _ in range(70):  # the next slot is about 10 s away: past the web cap (3 s), within the job cap (120 s)
        bitrix.limiter.store.reserve(f"portal:{member_id}", bitrix.limiter.rate_for(member_id))

    with pytest.raises(RateLimited):
        bitrix.client(member_id).call("user.admin")
    result = runner.invoke(args=["connectors", "list", "--portal", member_id, "--json"])

    assert result.exit_code == 0, result.output
    assert len(slept) == 1 and 5 < slept[0] < 120


def test_scripts_get_the_job_cap(bitrix, installed_portal, monkeypatch):
    monkeypatch.setattr(bitrix_app, "_shared_bitrix", bitrix)  # what Bitrix.from_env() would build
    assert bitrix_app.portal_client(installed_portal.member_id).max_wait == 120  # BITRIX_JOB_MAX_WAIT
    assert bitrix.client(installed_portal.member_id).max_wait == 3  # the web tier's BITRIX_WEB_MAX_WAIT


# --- one round trip per reservation (issue 10) ------------------------------------------------------

class WireLog:
    """What the limiter's connections send: SQL statements (SQLite's trace) or protocol round trips
    (libpq's trace: one Sync or Query message per round trip) on PostgreSQL."""

    def __init__(self, buckets: DatabaseBuckets, tmp_path):
        self.engine, self.dialect = buckets.engine, buckets.dialect
        self.statements: list[str] = []
        self.trace_file = open(tmp_path / "libpq.trace", "w+b")
        event.listen(self.engine, "checkout", self._on_checkout)
        event.listen(self.engine, "checkin", self._on_checkin)

    def _on_checkout(self, dbapi_connection, _record, _proxy):
        if self.dialect == "sqlite":
            dbapi_connection.set_trace_callback(self.statements.append)
        else:
            from psycopg.pq import Trace

            dbapi_connection.pgconn.trace(self.trace_file.fileno())
            dbapi_connection.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)

    def _on_checkin(self, dbapi_connection, _record):
        if self.dialect == "sqlite":
            dbapi_connection.set_trace_callback(None)
        else:
            dbapi_connection.pgconn.untrace()

    def round_trips(self) -> int:
        if self.dialect == "sqlite":
            return len(self.statements)
        self.trace_file.seek(0)
        return sum(1 for line in self.trace_file.read().decode(errors="replace").splitlines()
                   if line.startswith("F") and line.split("\t")[2].split(" ")[0] in ("Sync", "Query"))

    def clear(self):
        self.statements.clear()
        self.trace_file.seek(0)
        self.trace_file.truncate()

    def close(self):
        event.remove(self.engine, "checkout", self._on_checkout)
        event.remove(self.engine, "checkin", self._on_checkin)
        self.trace_file.close()


def test_a_reservation_is_one_statement_in_one_round_trip(bitrix, tmp_path):
    buckets = DatabaseBuckets(bitrix.session_factory, ManualClock())
    rate = Rate(per_second=2, burst=5)
    # Several connections in the pool, as after a burst of workers: the warm one must be used.
    burst = [buckets.engine.raw_connection() for _ in range(3)]
    for connection in burst:
        connection.close()
    # PostgreSQL prepares the statement on first use, once per parameter types (a limit, or none).
    buckets.reserve_within("portal:warm-up", rate, max_wait=10)
    buckets.release("portal:warm-up", rate)
    wire = WireLog(buckets, tmp_path)
    try:
        for key in ("portal:new", "portal:new"):  # the row is created, then updated
            wire.clear()
            assert buckets.reserve_within(key, rate, max_wait=10).granted
            assert wire.round_trips() == 1
            if wire.dialect == "sqlite":  # no BEGIN / COMMIT around it either
                assert wire.statements[0].lstrip().upper().startswith("INSERT")
        wire.clear()
        buckets.release("portal:new", rate)
        assert wire.round_trips() == 1
    finally:
        wire.close()


@pytest.mark.parametrize("store", ["database", "redis"])
def test_concurrent_reservations_grant_exactly_the_capacity(bitrix, store):
    rate = Rate(per_second=1e-6, burst=51)  # capacity 50; draining takes days, so only atomicity counts
    buckets, key = stores(bitrix, store, ManualClock()), unique_key("concurrent")

    def attempts(_):
        return [buckets.reserve_within(key, rate, max_wait=0).granted for _ in range(25)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        granted = [ok for outcome in pool.map(attempts, range(8)) for ok in outcome]

    assert granted.count(True) == 50 and len(granted) == 200
    assert buckets.reserve_within(key, rate, max_wait=0).granted is False
    buckets.release(key, rate)
    assert buckets.reserve_within(key, rate, max_wait=0).granted is True
