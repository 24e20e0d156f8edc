"""Benchmark: this project's automation next to b24pysdk and fast-bitrix24, against the sandbox.

    python3 -m venv bench/.venv && bench/.venv/bin/pip install -r bench/requirements.txt
    bench/.venv/bin/python bench/run.py [--updates 1000] [--portals 200] [--workers 16]

Everything runs on loopback against the fake Bitrix24 (bitrix_app/sandbox/fake) with its rate
limit ON at the real default (2 requests/s, burst 50 per portal). Prints a table and writes it,
with the date and the machine, to bench/results.md.

1. N source updates on one portal: wall time, HTTP requests, 503 answers; ours (a plan:
   read, diff, batches of 50) vs b24pysdk's `call_batches` vs fast-bitrix24's `call`, each on
   its own portal (the fake's buckets are per portal), plus the floor the rate limit sets.
2. The same plan across P portals: ours with a worker pool vs one portal after another.
3. 64 concurrent calls with an expired access token, 4 processes x 16 threads: calls to the
   token endpoint and failed calls, ours vs b24pysdk.
4. (extra) 4 jobs at once on one portal, 20 cheap calls each: whether the rate limit is kept
   when several processes share a portal.
5. One call through BitrixClient against a bare pooled `requests` call (SQLite, PostgreSQL with
   --probe-postgres, Redis), with and without the shared limiter.
6. Growth: the same plan over 200, 1,000 and 5,000 portals (--growth): wall against the ideal,
   requests and database round trips per portal, peak RSS (VmHWM) of the plan process.

The results file gets a summary of the issue's targets; sections other benchmarks wrote stay.

The peers are patched at runtime, in this process only, to reach the fake: b24pysdk hard-codes
https://<domain>/rest and https://oauth.bitrix24.tech; fast-bitrix24 takes a base URL.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bitrix_app.models import Base, Portal, PortalStatus  # noqa: E402
from bitrix_app.sandbox.fake import FakeBitrix24, demo_connector  # noqa: E402
from bitrix_app.services.bitrix import Bitrix  # noqa: E402
from bitrix_app.services.crypto import TokenCipher  # noqa: E402
from bitrix_app.services.database import make_engine, make_session_factory  # noqa: E402
from bitrix_app.services.oauth import TokenSet  # noqa: E402
from bitrix_app.services.plans import PlanRunner, parse_plan  # noqa: E402
from bitrix_app.services.settings import BitrixSettings  # noqa: E402

CLIENT_ID = "app.bench.client"
CLIENT_SECRET = "bench-client-secret"
REFRESH_LATENCY = 0.2  # seconds the fake spends in a refresh grant, like a real round trip
PROCESSES, THREADS = 4, 16


# --- the sandbox --------------------------------------------------------------------------------

class NetworkLatency:
    """WSGI middleware: REST and OAuth requests wait `seconds` first, like a trip to a cloud portal.

    Connector checks (the demo connector, in a process of its own) stay instant: in real life they
    are our own server.
    """

    def __init__(self, app, seconds: float):
        self.app = app
        self.seconds = seconds

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if self.seconds and ("/rest/" in path or path.startswith("/oauth/")):
            time.sleep(self.seconds)
        return self.app(environ, start_response)


def waitress_server(app, threads: int):
    """A waitress server for `app` on a free loopback port: a fixed pool of threads, connections
    kept alive (not yet running: call its `run`)."""
    import logging

    from waitress.server import create_server

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" under bursts
    return create_server(app, host="127.0.0.1", port=0, threads=threads, connection_limit=2000,
                         asyncore_use_poll=True, ident="")


def serve_with_keep_alive(fake: FakeBitrix24, threads: int = 64):
    """Serve the fake with waitress rather than its own werkzeug server, which closes every
    connection: a cloud portal's front end keeps connections alive, and every client here pools
    them. A fixed pool of threads instead of a thread per connection, on loopback."""
    import threading

    server = waitress_server(fake.flask_app, threads)
    fake.url = fake.state.base_url = f"http://127.0.0.1:{server.effective_port}"
    threading.Thread(target=server.run, name="fake-bitrix24", daemon=True).start()
    return server


def start_demo_connector():
    """The demo connector on a server and in a process of its own, as a connector is in real life:
    the portal's urlCheck calls then cost the fake's process only the outbound request."""
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    process = context.Process(target=serve_demo_connector, args=(ready,), daemon=True)
    process.start()
    return process, ready.get(timeout=60)


def serve_demo_connector(ready) -> None:
    """In its own process, under waitress; puts its base URL into `ready` once it listens."""
    server = waitress_server(demo_connector.create_app(), threads=32)
    ready.put(f"http://127.0.0.1:{server.effective_port}/_demo_connector")
    server.run()


class Sandbox:
    """A fake Bitrix24 plus our database, with portals installed directly (no installer round trip)."""

    def __init__(self, database_url: str, latency: float = 0.0):
        self.fake = FakeBitrix24(CLIENT_ID, CLIENT_SECRET, app_url="http://127.0.0.1:9")
        self.latency = NetworkLatency(self.fake.flask_app.wsgi_app, latency)
        self.fake.flask_app.wsgi_app = self.latency
        self.server = serve_with_keep_alive(self.fake)
        assert self.fake.config.rate_limit  # the point of the benchmark
        self.connector_process, self.connector_url = start_demo_connector()
        self.database_url = database_url
        engine = make_engine(database_url)
        Base.metadata.create_all(engine)
        self.session_factory = make_session_factory(engine)
        self.enterprise_domains: list[str] = []
        self.key = TokenCipher.generate_key()
        self.round = 0  # portals of each repetition get their own domains, hence fresh buckets

    @property
    def settings(self) -> BitrixSettings:
        return BitrixSettings(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, oauth_server=self.fake.url, allow_insecure=True,
            public_url="http://127.0.0.1:9", encryption_keys=(self.key,),
            enterprise_portals=tuple(self.enterprise_domains), redis_url=os.environ.get("REDIS_URL"),
        )

    def bitrix(self) -> Bitrix:
        return Bitrix(self.settings, self.session_factory).for_jobs()

    def add_portal(self, name: str, sources: int = 2, enterprise: bool = False):
        domain = f"{name}.r{self.round}.bitrix24.test"
        portal = self.fake.add_portal(domain=domain, enterprise=enterprise)
        if enterprise:
            self.enterprise_domains.append(domain)
        reply = self.fake.issue_tokens(portal)
        bitrix = self.bitrix()
        with self.session_factory() as session, session.begin():
            row = Portal(member_id=portal.member_id, domain=domain, client_endpoint=portal.client_endpoint,
                         server_endpoint=reply["server_endpoint"], status=PortalStatus.ACTIVE, scope=reply["scope"])
            session.add(row)
            bitrix.tokens.save_tokens(session, row, TokenSet(
                reply["access_token"], reply["refresh_token"], datetime.fromtimestamp(reply["expires"], timezone.utc)))
        demo = self.fake.seed_demo(portal, self.connector_url)
        source_ids = demo["source_ids"] + [
            self.fake.seed_source(portal, {"title": f"Shop {n}", "connectorId": demo["connector_id"],
                                           "settings": {"host": "old.example.com", "port": "5432", "token": "t"}})
            for n in range(sources - 2)
        ]
        return portal, reply, source_ids

    def add_portals(self, prefix: str, count: int, session_factory=None) -> list:
        """`count` portals with the demo connector and its two sources, stored in one transaction
        (in `session_factory`'s database: the growth scenario gives each size a database of its own)."""
        session_factory = session_factory or self.session_factory
        tokens = self.bitrix().tokens
        portals = []
        with session_factory() as session, session.begin():
            for number in range(count):
                domain = f"{prefix}{number:05}.r{self.round}.bitrix24.test"
                portal = self.fake.add_portal(domain=domain)
                reply = self.fake.issue_tokens(portal)
                row = Portal(member_id=portal.member_id, domain=domain, client_endpoint=portal.client_endpoint,
                             server_endpoint=reply["server_endpoint"], status=PortalStatus.ACTIVE,
                             scope=reply["scope"])
                session.add(row)
                tokens.save_tokens(session, row, TokenSet(reply["access_token"], reply["refresh_token"],
                                                          datetime.fromtimestamp(reply["expires"], timezone.utc)))
                self.fake.seed_demo(portal, self.connector_url)
                portals.append(portal)
        return portals

    def stop(self) -> None:
        self.server.close()
        self.connector_process.terminate()
        self.connector_process.join(timeout=10)

    def requests(self, portal) -> int:
        return self.fake.count_requests(portal)

    def host_values(self, portal, source_ids) -> list[str]:
        return [{s["code"]: s["value"] for s in portal.sources[i]["settings"]}["host"] for i in source_ids]


@dataclass
class Row:
    scenario: str
    client: str
    wall: float | None
    requests: int | None
    answers_503: int | None
    token_calls: int | None = None
    failed: int | None = None
    note: str = ""
    # Figures the targets summary reads: "ratio" (vs the row's yardstick), "rss" (MB).
    figures: dict = field(default_factory=dict)


def measure(sandbox: Sandbox, portals: list, target, *args):
    """Run `target(*args)` in a fresh process (the fake keeps this one to itself); return its wall
    time, its value, and the HTTP requests and 503 answers the fake saw on these portals."""
    before = [(sandbox.requests(p), sandbox.fake.count_503(p)) for p in portals]
    wall, value = in_child(target, *args)
    requests = sum(sandbox.requests(p) - b[0] for p, b in zip(portals, before))
    answers_503 = sum(sandbox.fake.count_503(p) - b[1] for p, b in zip(portals, before))
    return wall, value, requests, answers_503


def in_child(target, *args):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_child, args=(target, args, results))
    process.start()
    outcome = results.get(timeout=3600)
    process.join(timeout=60)
    if isinstance(outcome, str):
        raise RuntimeError(f"{target.__name__} failed in its process:\n{outcome}")
    return outcome


def _child(target, args, results):
    """Targets time only their own work (imports and setup excluded) and return (wall, value)."""
    import traceback

    try:
        results.put(target(*args))
    except Exception:  # the parent prints it
        results.put(traceback.format_exc())


def timed(work):
    started = time.perf_counter()
    value = work()
    return time.perf_counter() - started, value


# --- peers, pointed at the fake -------------------------------------------------------------------

def patch_b24pysdk(fake_url: str) -> None:
    """b24pysdk builds https://<domain>/rest and calls https://oauth.bitrix24.tech; reroute both."""
    import importlib

    from b24pysdk.api.requesters.bitrix_oauth_requester import BitrixOAuthRequester

    method_caller = importlib.import_module("b24pysdk.api.callers.call_method")._MethodCaller
    method_caller._base_url = property(lambda self: f"{fake_url}/{self._domain}/rest")
    BitrixOAuthRequester._OAUTH_TOKEN_URL = f"{fake_url}/oauth/token/"
    BitrixOAuthRequester._APP_INFO_URL = f"{fake_url}/rest/app.info/"


def b24pysdk_token(domain: str, access: str, refresh: str, expires: float):
    from b24pysdk import BitrixApp, BitrixToken

    return BitrixToken(domain=domain, auth_token=access, refresh_token=refresh,
                       expires=datetime.fromtimestamp(expires).astimezone(),
                       bitrix_app=BitrixApp(client_id=CLIENT_ID, client_secret=CLIENT_SECRET))


def source_update(source_id: int, title: str, host: str) -> tuple[str, dict]:
    return "biconnector.source.update", {"id": source_id, "fields": {"title": title, "settings": {"host": host}}}


# --- scenario 1: N updates on one portal --------------------------------------------------------------

def ours_apply(settings, database_url, plan_data, members, workers):
    bitrix = Bitrix(settings, make_session_factory(make_engine(database_url))).for_jobs()
    runner = PlanRunner(bitrix, parse_plan(plan_data, {}))
    wall, reports = timed(lambda: list(runner.run(members, workers=workers)))
    return wall, [(r.status, sum(u.applied for u in r.updates)) for r in reports]


def b24pysdk_batches(fake_url, domain, reply, methods):
    patch_b24pysdk(fake_url)
    token = b24pysdk_token(domain, reply["access_token"], reply["refresh_token"], reply["expires"])
    return timed(lambda: token.call_batches(methods, halt=False) and None)


def fast_bitrix24_call(fake_url, domain, access_token, items):
    from fast_bitrix24 import Bitrix as FastBitrix

    async def token():
        return access_token

    client = FastBitrix(f"{fake_url}/{domain}/rest/", token_func=token, verbose=False)
    return timed(lambda: client.call("biconnector.source.update", items) and None)


def scenario_updates(sandbox: Sandbox, count: int) -> list[Row]:
    name = f"1. {count:,} source updates, one portal"
    rows = []

    def landed(portal, ids, prefix):
        return sum(1 for i, value in zip(ids, sandbox.host_values(portal, ids)) if value == f"{prefix}{i}.example.com")

    portal, _, ids = sandbox.add_portal("ours-updates", sources=count)
    plan = {"sources": [{"match": {"id": i}, "fields": {"settings": {"host": f"ours{i}.example.com"}}} for i in ids]}
    wall, _, requests, answers_503 = measure(sandbox, [portal], ours_apply, sandbox.settings, sandbox.database_url,
                                             plan, [portal.member_id], 1)
    rows.append(Row(name, "this project (plan: read, diff, batch)", wall, requests, answers_503,
                    note=f"{landed(portal, ids, 'ours')}/{count} landed; includes reading the current state"))

    portal, reply, ids = sandbox.add_portal("b24pysdk-updates", sources=count)
    methods = [source_update(i, portal.sources[i]["title"], f"b24{i}.example.com") for i in ids]
    wall, _, requests, answers_503 = measure(sandbox, [portal], b24pysdk_batches, sandbox.fake.url, portal.domain,
                                             reply, methods)
    rows.append(Row(name, "b24pysdk call_batches", wall, requests, answers_503,
                    note=f"{landed(portal, ids, 'b24')}/{count} landed; blind writes, no client-side rate limit"))

    portal, reply, ids = sandbox.add_portal("fast-updates", sources=count)
    items = [source_update(i, portal.sources[i]["title"], f"fast{i}.example.com")[1] for i in ids]
    wall, _, requests, answers_503 = measure(sandbox, [portal], fast_bitrix24_call, sandbox.fake.url, portal.domain,
                                             reply["access_token"], items)
    rows.append(Row(name, "fast-bitrix24 call", wall, requests, answers_503,
                    note=f"{landed(portal, ids, 'fast')}/{count} landed; blind writes, own in-process leaky bucket"))

    batches = -(-count // 50)
    rows.append(Row(name, "rate-limit floor", max(0.0, (batches - 50) / 2), batches, 0,
                    note=f"{batches} batches of 50 fit in the burst of 50; "
                         f"{count:,} single calls would need >= {max(0, count - 50) / 2:,.0f} s"))
    return rows


# --- scenario 2: one plan, many portals -----------------------------------------------------------------

def fleet_plan(members: list[str], version: str) -> dict:
    return {
        "portals": members,
        "connectors": [{"match": {"title": "Demo warehouse"}, "fields": {"description": f"Fleet {version}"}}],
        "sources": [
            {"match": {"title": "Main warehouse"}, "fields": {"settings": {"host": f"main-{version}.example.com"}}},
            {"match": {"title": "Backup warehouse"}, "fields": {"settings": {"host": f"backup-{version}.example.com"}}},
        ],
    }


def scenario_fleet(sandbox: Sandbox, count: int, workers: int) -> list[Row]:
    name = f"2. same plan, {count} portals"
    portals = [sandbox.add_portal(f"fleet{n:03}")[0] for n in range(count)]
    members = [p.member_id for p in portals]
    rows = []
    for label, version, pool in (("this project, one portal after another", "v1", 1),
                                 (f"this project, {workers} workers", "v2", workers)):
        wall, outcomes, requests, answers_503 = measure(sandbox, portals, ours_apply, sandbox.settings,
                                                        sandbox.database_url, fleet_plan(members, version),
                                                        members, pool)
        changed = sum(1 for status, _ in outcomes if status == "changed")
        note = f"{changed}/{count} portals changed, 3 updates each"
        figures = {}
        if pool > 1:
            figures["ratio"] = wall / rows[0].wall
            note += f"; **{figures['ratio']:.3f} ×** one after another"
        rows.append(Row(name, label, wall, requests, answers_503, failed=len(outcomes) - changed, note=note,
                        figures=figures))
    return rows


# --- scenario 3: an expired token, 64 concurrent calls in 4 processes -----------------------------------

def ours_worker(settings, database_url, member_id, ready, start, results):
    from concurrent.futures import ThreadPoolExecutor

    bitrix = Bitrix(settings, make_session_factory(make_engine(database_url))).for_jobs()

    def one_call(_):
        client = bitrix.client(member_id)  # one client per call, like one per web request
        start.wait(timeout=60)
        try:
            client.call("user.admin")
            return True
        except Exception:  # counted as a failed call
            return False

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        ready.put(True)
        results.put(list(pool.map(one_call, range(THREADS))))


def b24pysdk_worker(fake_url, domain, access, refresh, expires, ready, start, results):
    from concurrent.futures import ThreadPoolExecutor

    patch_b24pysdk(fake_url)

    def one_call(_):
        token = b24pysdk_token(domain, access, refresh, expires)  # built from the stored pair, per call
        start.wait(timeout=60)
        try:
            token.call_method("user.admin")
            return True
        except Exception:  # counted as a failed call
            return False

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        ready.put(True)
        results.put(list(pool.map(one_call, range(THREADS))))


def run_processes(target, args) -> tuple[float, list[bool]]:
    context = multiprocessing.get_context("spawn")
    ready, start, results = context.Queue(), context.Event(), context.Queue()
    processes = [context.Process(target=target, args=(*args, ready, start, results)) for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=120)
    time.sleep(0.5)  # every thread is parked on the start event
    started = time.perf_counter()
    start.set()
    outcomes = [ok for _ in processes for ok in results.get(timeout=300)]
    wall = time.perf_counter() - started
    for process in processes:
        process.join(timeout=60)
    return wall, outcomes


def scenario_expired_token(sandbox: Sandbox) -> list[Row]:
    name = f"3. expired token, {PROCESSES * THREADS} calls in {PROCESSES} processes"
    sandbox.fake.config.refresh_latency = REFRESH_LATENCY
    rows = []
    for label, portal_name in (("this project", "ours-token"), ("b24pysdk", "b24pysdk-token")):
        portal, reply, _ = sandbox.add_portal(portal_name, enterprise=True)
        domain = portal.domain
        sandbox.fake.expire_access_tokens(portal)
        if label == "this project":
            target, args = ours_worker, (sandbox.settings, sandbox.database_url, portal.member_id)
        else:
            target, args = b24pysdk_worker, (sandbox.fake.url, domain, reply["access_token"],
                                             reply["refresh_token"], reply["expires"])
        token_calls_before = sandbox.fake.token_requests(portal)
        before = (sandbox.requests(portal), sandbox.fake.count_503(portal))
        wall, outcomes = run_processes(target, args)
        rows.append(Row(name, label, wall, sandbox.requests(portal) - before[0],
                        sandbox.fake.count_503(portal) - before[1],
                        token_calls=sandbox.fake.token_requests(portal) - token_calls_before,
                        failed=outcomes.count(False),
                        note="single-flight refresh across processes" if label == "this project"
                        else "refresh per caller, no lock; the rotated refresh token is single-use"))
    sandbox.fake.config.refresh_latency = 0.0
    return rows


# --- scenario 4 (extra): parallel jobs on one portal ----------------------------------------------------

CALLS_PER_JOB = 20


def ours_calls(settings, database_url, member_id, ready, start, results):
    client = Bitrix(settings, make_session_factory(make_engine(database_url))).for_jobs().client(member_id)
    ready.put(True)
    start.wait(timeout=60)
    results.put([_succeeds(lambda: client.call("user.admin")) for _ in range(CALLS_PER_JOB)])


def b24pysdk_calls(fake_url, domain, reply, ready, start, results):
    patch_b24pysdk(fake_url)
    token = b24pysdk_token(domain, reply["access_token"], reply["refresh_token"], reply["expires"])
    ready.put(True)
    start.wait(timeout=60)
    results.put([_succeeds(lambda: token.call_method("user.admin")) for _ in range(CALLS_PER_JOB)])


def fast_bitrix24_calls(fake_url, domain, access_token, ready, start, results):
    from fast_bitrix24 import Bitrix as FastBitrix

    async def token():
        return access_token

    client = FastBitrix(f"{fake_url}/{domain}/rest/", token_func=token, verbose=False)
    ready.put(True)
    start.wait(timeout=60)
    results.put([_succeeds(lambda: client.call("user.admin", {"ID": 1}, raw=True)) for _ in range(CALLS_PER_JOB)])


def _succeeds(call) -> bool:
    try:
        call()
        return True
    except Exception:  # counted as a failed call
        return False


def scenario_parallel_jobs(sandbox: Sandbox) -> list[Row]:
    name = f"4. {PROCESSES} jobs at once on one portal, {CALLS_PER_JOB} calls each (extra)"
    rows = []
    for label, portal_name in (("this project", "ours-jobs"), ("b24pysdk", "b24pysdk-jobs"),
                               ("fast-bitrix24", "fast-jobs")):
        portal, reply, _ = sandbox.add_portal(portal_name)
        target, args = {
            "this project": (ours_calls, (sandbox.settings, sandbox.database_url, portal.member_id)),
            "b24pysdk": (b24pysdk_calls, (sandbox.fake.url, portal.domain, reply)),
            "fast-bitrix24": (fast_bitrix24_calls, (sandbox.fake.url, portal.domain, reply["access_token"])),
        }[label]
        before = (sandbox.requests(portal), sandbox.fake.count_503(portal))
        wall, outcomes = run_processes(target, args)
        rows.append(Row(name, label, wall, sandbox.requests(portal) - before[0],
                        sandbox.fake.count_503(portal) - before[1], failed=outcomes.count(False),
                        note={"this project": "one bucket shared by the processes (database)",
                              "b24pysdk": "no client-side limit; retries a 503 twice (1 s, 2 s)",
                              "fast-bitrix24": "a bucket per process; backs off after 503s"}[label]))
    total = PROCESSES * CALLS_PER_JOB
    rows.append(Row(name, "rate-limit floor", max(0.0, (total - 50) / 2), total, 0,
                    note=f"{total} requests, burst 50 at 2/s"))
    return rows


# --- scenario 5: per-call overhead of BitrixClient against a bare pooled requests call --------------------

PROBE_RATE = 1_000_000.0  # our limiter still makes its reservation per call, but never waits


def probe_child(settings, database_url, member_id, endpoint, calls):
    """Median seconds per call: a bare pooled `requests` POST of the same body, and `client.call`,
    interleaved so both see the same load. Runs in its own process."""
    import statistics

    from bitrix_app.services.rest import make_http_session

    bitrix = Bitrix(settings, make_session_factory(make_engine(database_url))).for_jobs()
    client = bitrix.client(member_id)
    http = make_http_session()
    token = bitrix.tokens.current(member_id).value

    def bare():
        response = http.post(endpoint + "user.admin", json={"auth": token}, timeout=(5, 60), allow_redirects=False)
        assert response.json()["result"] is True

    def ours():
        assert client.call("user.admin") is True

    bare_times, our_times = [], []
    for number in range(calls + 20):  # the first 20 of each warm pools, caches and prepared statements
        for work, times in ((bare, bare_times), (ours, our_times)):
            started = time.perf_counter()
            work()
            if number >= 20:
                times.append(time.perf_counter() - started)
    return statistics.median(bare_times), statistics.median(our_times)


def scenario_probe(sandbox: Sandbox, calls: int, backends: dict[str, str]) -> list[Row]:
    """`backends`: label -> database URL ("redis" uses the sandbox database for tokens and REDIS_URL)."""
    rows = []
    # The fake answers at once (no simulated latency) and without its rate limit: the probe makes
    # thousands of calls to one portal and measures what the client adds to each.
    rate_limit, sandbox.fake.config.rate_limit = sandbox.fake.config.rate_limit, False
    latency, sandbox.latency.seconds = sandbox.latency.seconds, 0.0
    try:
        for backend, database_url in backends.items():
            redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14") if backend == "Redis" else None
            engine = make_engine(database_url)
            Base.metadata.create_all(engine)
            [portal] = sandbox.add_portals(f"probe-{backend.lower()}-", 1, make_session_factory(engine))
            for limited in (False, True):
                if backend == "Redis" and not limited:
                    continue  # without the limiter Redis plays no part: the database rows cover it
                settings = replace(sandbox.settings, redis_url=redis_url,
                                   rate_per_second=PROBE_RATE if limited else 0.0,
                                   rate_burst=int(PROBE_RATE) if limited else 50)
                bare, ours = in_child(probe_child, settings, database_url, portal.member_id,
                                      portal.client_endpoint, calls)
                limiter = f"shared limiter in {backend}" if limited else "no limiter"
                rows.append(Row(f"5. one call, {backend}", f"BitrixClient, {limiter}", None, calls, 0,
                                note=f"{ours * 1000:.2f} ms vs {bare * 1000:.2f} ms bare pooled requests: "
                                     f"**{ours / bare:.2f} ×**", figures={"ratio": ours / bare}))
    finally:
        sandbox.fake.config.rate_limit, sandbox.latency.seconds = rate_limit, latency
    return rows


# --- scenario 6: how cost grows with the number of portals ---------------------------------------------

def growth_child(settings, database_url, version, workers):
    """The fleet plan over every portal in the database, streamed; returns what it cost."""
    import resource

    from sqlalchemy import event

    from bitrix_app.services.plans import PlanRunner as Runner

    engine = make_engine(database_url)
    bitrix = Bitrix(settings, make_session_factory(engine)).for_jobs()
    statements = {"app": 0, "limiter": 0}
    event.listen(engine, "before_cursor_execute", lambda *_: statements.__setitem__("app", statements["app"] + 1))
    event.listen(engine, "commit", lambda *_: statements.__setitem__("app", statements["app"] + 1))
    store = bitrix.limiter.store if bitrix.limiter is not None else None
    if store is not None and hasattr(store, "engine"):  # one checkout per reservation statement
        event.listen(store.engine, "checkout",
                     lambda *_: statements.__setitem__("limiter", statements["limiter"] + 1))
    plan = parse_plan({"portals": "all", **{k: v for k, v in fleet_plan([], version).items() if k != "portals"}}, {})
    runner = Runner(bitrix, plan)
    counts: dict[str, int] = {}
    requests = 0

    def consume():
        nonlocal requests
        for report in runner.run(workers=workers):  # streamed: nothing kept per portal
            counts[report.status] = counts.get(report.status, 0) + 1
            requests += report.requests

    rss_before, cpu_before = process_memory("VmRSS") or 0.0, time.process_time()
    wall, _ = timed(consume)
    peak_rss_mb = process_memory("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return wall, (counts, requests, statements, (peak_rss_mb, rss_before), time.process_time() - cpu_before)


def process_memory(field_name: str) -> float | None:
    """A /proc/self/status figure in MB: VmRSS (now) or VmHWM (peak). The peak is not `ru_maxrss`:
    a spawned child starts as a fork of the parent and Linux keeps the fork's high-water mark across
    the exec, so ru_maxrss would show the parent's size (the fake with all its portals)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def scenario_growth(sandbox: Sandbox, sizes: list[int], workers: int, latency: float, folder: str) -> list[Row]:
    rows = []
    for size in sizes:
        database_url = f"sqlite:///{folder}/growth{size}-r{sandbox.round}.db"
        engine = make_engine(database_url)
        Base.metadata.create_all(engine)
        portals = sandbox.add_portals(f"g{size}-", size, make_session_factory(engine))
        engine.dispose()
        members, logged = {portal.member_id for portal in portals}, len(sandbox.fake.requests_log)
        cpu_before = time.process_time()  # this process is the fake (the plan runs in a child)
        wall, (counts, requests, statements, (rss, rss_before), plan_cpu) = in_child(
            growth_child, sandbox.settings, database_url, "g", workers)
        fake_cpu = time.process_time() - cpu_before
        entries = [entry for entry in sandbox.fake.requests_log[logged:]
                   if entry["member_id"] in members and not entry["in_batch"]]
        fake_requests, answers_503 = len(entries), sum(1 for entry in entries if entry["status"] == 503)
        ideal = fake_requests * latency / workers
        per_portal = (statements["app"] + statements["limiter"]) / size
        rows.append(Row(f"6. growth, {size:,} portals, {workers} workers", "this project (streamed plan)", wall,
                        fake_requests, answers_503, failed=size - counts.get("changed", 0),
                        note=f"{wall / ideal:.2f} × the ideal {ideal:.1f} s; {per_portal:.1f} database round trips "
                             f"per portal ({statements['app'] / size:.1f} app + {statements['limiter'] / size:.1f} "
                             f"limiter); peak RSS {rss:.0f} MB ({rss_before:.0f} MB before the run); "
                             f"fake CPU {fake_cpu:.0f} s "
                             f"({fake_cpu / wall:.2f} of one core), plan process CPU {plan_cpu:.0f} s "
                             f"({plan_cpu / wall:.2f})",
                        figures={"ratio": wall / ideal, "rss": rss, "round_trips": per_portal}))
    return rows


# --- report -----------------------------------------------------------------------------------------------

def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                             if line.startswith("MemTotal")))
        memory = f", {memory_kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        memory = ""
    return f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}"


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{name} {version(name)}" for name in ("b24pysdk", "fast-bitrix24"))


def markdown(rows: list[Row]) -> str:
    def fmt(value, suffix=""):
        if value is None:
            return "–"
        return f"{value:.1f}{suffix}" if isinstance(value, float) else f"{value}{suffix}"

    lines = ["| Scenario | Client | Wall time | HTTP requests | 503 answers | Token calls | Failed calls | Notes |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        lines.append(f"| {row.scenario} | {row.client} | {fmt(row.wall, ' s')} | {fmt(row.requests)} | "
                     f"{fmt(row.answers_503)} | {fmt(row.token_calls)} | {fmt(row.failed)} | {row.note} |")
    return "\n".join(lines)


def targets(rows: list[Row]) -> list[str]:
    """The issue's targets, each against the figures of this run."""
    def verdict(value: float, limit: float) -> str:
        return "met" if value <= limit else f"**missed** by {value / limit - 1:.0%}"

    by = {(row.scenario.split(".")[0], row.client): row for row in rows}
    lines = []
    ours, fast = by.get(("1", "this project (plan: read, diff, batch)")), by.get(("1", "fast-bitrix24 call"))
    if ours and fast:
        ratio = ours.wall / fast.wall
        lines.append(f"- Scenario 1: {ours.wall:.2f} s vs fast-bitrix24's {fast.wall:.2f} s = **{ratio:.2f} ×** "
                     f"(target ≤ 1.1 ×: {verdict(ratio, 1.1)}); **{ours.requests} requests** "
                     f"(target ≤ 22: {'met' if ours.requests <= 22 else 'missed by ' + str(ours.requests - 22)}).")
    fleet = [row for row in rows if row.scenario.startswith("2.") and "ratio" in row.figures]
    for row in fleet:
        lines.append(f"- Scenario 2: {row.client} vs one after another = **{row.figures['ratio']:.3f} ×** "
                     f"(target ≤ 0.1 ×: {verdict(row.figures['ratio'], 0.1)}).")
    for row in rows:
        if row.scenario.startswith("5."):
            limit = 1.2 if "no limiter" in row.client else 1.5
            lines.append(f"- {row.scenario}, {row.client}: **{row.figures['ratio']:.2f} ×** "
                         f"(target ≤ {limit} ×: {verdict(row.figures['ratio'], limit)}).")
    growth = [row for row in rows if row.scenario.startswith("6.")]
    if growth:
        last = growth[-1]
        lines.append(f"- Scenario 6: {last.scenario.split(', ')[1]} at **{last.figures['ratio']:.2f} ×** "
                     "the ideal wall "
                     f"(target ≤ 2 ×: {verdict(last.figures['ratio'], 2.0)}); peak RSS "
                     + " / ".join(f"{row.figures['rss']:.0f}" for row in growth) + " MB for "
                     + " / ".join(row.scenario.split(", ")[1].split()[0] for row in growth) + " portals; "
                     + " / ".join(f"{row.figures['round_trips']:.1f}" for row in growth)
                     + " database round trips per portal.")
    return lines


def median_rows(runs: list[list[Row]]) -> list[Row]:
    """One row per client: the median wall time; the worst 503, token-call and failure counts."""
    rows = []
    for same in zip(*runs):
        middle = sorted(same, key=lambda row: row.wall or 0)[len(same) // 2]
        worst = lambda name: max((getattr(r, name) for r in same if getattr(r, name) is not None), default=None)  # noqa: E731
        rows.append(Row(middle.scenario, middle.client, middle.wall, middle.requests, worst("answers_503"),
                        worst("token_calls"), worst("failed"), middle.note, middle.figures))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=1000, help="source updates in scenario 1")
    parser.add_argument("--portals", type=int, default=200, help="portals in scenario 2")
    parser.add_argument("--workers", type=int, default=16, help="worker pool in scenario 2")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario; the table shows the median")
    parser.add_argument("--latency-ms", type=float, default=50, help="simulated network latency per REST request")
    parser.add_argument("--growth", default="200,1000,5000", help="portal counts of the growth scenario ('' skips)")
    parser.add_argument("--probe-calls", type=int, default=300, help="calls per variant in the per-call probe")
    parser.add_argument("--probe-postgres", default=os.environ.get("BENCH_PROBE_POSTGRES_URL"),
                        help="a PostgreSQL URL for the probe's PostgreSQL rows (skipped without one)")
    parser.add_argument("--only", default="1,2,3,4,5,6", help="scenarios to run, e.g. 1,5")
    parser.add_argument("--output", default=str(Path(__file__).with_name("results.md")))
    options = parser.parse_args()
    only = {int(number) for number in options.only.split(",") if number}
    sizes = [int(size) for size in options.growth.split(",") if size]

    with tempfile.TemporaryDirectory() as folder:
        database_url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{folder}/bench.db"
        sandbox = Sandbox(database_url, options.latency_ms / 1000)
        started, load_before = datetime.now(timezone.utc), os.getloadavg()[0]
        runs = []
        for repetition in range(options.repeat):
            sandbox.round = repetition
            print(f"run {repetition + 1} of {options.repeat}", file=sys.stderr)
            rows = []
            rows += scenario_updates(sandbox, options.updates) if 1 in only else []
            rows += scenario_fleet(sandbox, options.portals, options.workers) if 2 in only else []
            rows += scenario_expired_token(sandbox) if 3 in only else []
            rows += scenario_parallel_jobs(sandbox) if 4 in only else []
            if 5 in only:
                backends = {"SQLite": sandbox.database_url}
                if options.probe_postgres:
                    backends["PostgreSQL"] = options.probe_postgres
                backends["Redis"] = sandbox.database_url
                rows += scenario_probe(sandbox, options.probe_calls, backends)
            runs.append(rows)
        growth = []
        if 6 in only:  # once: 5,000 portals take minutes
            growth = scenario_growth(sandbox, sizes, options.workers, options.latency_ms / 1000, folder)
        sandbox.stop()

    rows = median_rows(runs) + growth
    table = markdown(rows)
    backend = "Redis" if os.environ.get("REDIS_URL") else database_url.split(":", 1)[0].split("+")[0]
    report = "\n".join([
        f"# Benchmark results — {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"- Machine: {machine()}",
        f"- Peers: {versions()}",
        "- Sandbox: the project's fake Bitrix24 on loopback, in its own process (each client runs in a fresh "
        "process), rate limit ON at the real default (2 requests/s, burst 50 per portal); scenario 3 uses "
        f"Enterprise portals (5/s, burst 250) and a {REFRESH_LATENCY:.1f} s refresh latency at the fake token endpoint.",
        f"- Simulated network latency: {options.latency_ms:.0f} ms before every REST and OAuth request (the fake "
        "itself answers in a few ms; connector checks stay local).",
        "- The fake serves every portal from one Python process on the same machine, under waitress (64 threads, "
        "connections kept alive, as a cloud portal's front end does; the fake's own werkzeug server closes every "
        "connection). The demo connector that answers its `urlCheck` calls runs in a process of its own, as a "
        "connector's server would (each check on a new connection, `Connection: close`, as the portal's client "
        "does). With many workers, the fake and the checks, not the client, use most of the 2 cores.",
        f"- Our shared bucket lives in {backend}. Every client works on portals of its own, so none inherits "
        "another's bucket.",
        f"- Median wall time of {options.repeat} runs; 503, token-call and failure columns show the worst run"
        f" (command: `bench/run.py {' '.join(sys.argv[1:])}`). Load average {load_before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end (the machine is shared with other jobs).",
        "- Scenario 5 (per-call probe): the fake answers at once (no simulated latency) and with its rate limit off "
        "for that one portal; our limiter runs at 1,000,000/s so it reserves on every call but never waits. Medians "
        f"of {options.probe_calls} interleaved calls, after 20 warm-up calls each.",
        "- Scenario 6 (growth): the fleet plan (`portals: all`, 1 connector + 2 source updates per portal), each size "
        f"in a SQLite database of its own, portals streamed from the database; ideal wall = requests × latency ÷ "
        f"{options.workers} workers. Round trips = SQL statements + commits on the app engine, and limiter "
        "checkouts (one statement each). Peak RSS = VmHWM of the plan process (not ru_maxrss, which would "
        "report the forked parent's size, i.e. the fake's); the fake's and the plan process's CPU are in the note.",
        "",
        table,
        "",
        "Targets (issue 10), from this run:",
        "",
        *targets(rows),
        "",
    ])
    print(report)
    output = Path(options.output)
    previous = output.read_text(encoding="utf-8") if output.exists() else ""
    others = previous.find("\n## ")  # sections other benchmarks write (bench/gateway.py) stay
    output.write_text(report + (previous[others:] if others >= 0 else ""), encoding="utf-8")
    print(f"written to {options.output}")


if __name__ == "__main__":
    main()
