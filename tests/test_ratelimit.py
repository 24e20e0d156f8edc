"""The client-side leaky bucket: its arithmetic, both stores, and two processes sharing one bucket."""
import multiprocessing
import os
import time
from dataclasses import replace

import pytest
import redis

from bitrix_app.services.ratelimit import DatabaseBuckets, Rate, RateLimiter, RedisBuckets, limiter_for

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
