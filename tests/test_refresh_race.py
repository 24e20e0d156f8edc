"""Many workers hit an expired token at once: exactly one refresh, no failed call.

4 processes x 8 threads, each process with its own engine and HTTP pool, like gunicorn
workers. CI runs this on SQLite and on PostgreSQL (SELECT ... FOR UPDATE).
"""
import multiprocessing
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from bitrix_app.models import PortalToken

PROCESSES = 4
THREADS = 8


def worker(settings, database_url, member_id, start, results):
    from concurrent.futures import ThreadPoolExecutor

    from bitrix_app.services.bitrix import Bitrix
    from bitrix_app.services.database import make_engine, make_session_factory

    bitrix = Bitrix(settings, make_session_factory(make_engine(database_url))).for_jobs()  # may queue, as jobs do
    client = bitrix.client(member_id)

    def one_call(_):
        start.wait(timeout=120)
        try:
            return ("ok", client.call("user.admin"))
        except Exception as exc:  # report, don't crash the worker
            return ("failed", f"{type(exc).__name__}: {exc}")

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for outcome in pool.map(one_call, range(THREADS)):
            results.put(outcome)


def run_workers(bitrix, database_url, member_id):
    # forkserver: clean children (no inherited server threads) that start fast from a preloaded parent.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["bitrix_app.services.bitrix", "bitrix_app.services.database"])
    start, results = context.Event(), context.Queue()
    processes = [
        context.Process(target=worker, args=(bitrix.settings, database_url, member_id, start, results))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    start.set()
    outcomes = [results.get(timeout=120) for _ in range(PROCESSES * THREADS)]
    for process in processes:
        process.join(timeout=30)
    return outcomes


@pytest.mark.parametrize("how", ["rejected by the portal", "stored expiry passed"])
def test_one_refresh_for_many_processes_and_threads(fake, installed_portal, bitrix, database_url, how):
    fake.config.refresh_latency = 0.3  # widen the window in which a second refresh could start
    fake.expire_access_tokens(installed_portal)
    if how == "stored expiry passed":
        with bitrix.session_factory() as session, session.begin():
            session.execute(update(PortalToken).values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=5)))

    outcomes = run_workers(bitrix, database_url, installed_portal.member_id)

    failures = [detail for status, detail in outcomes if status != "ok"]
    assert failures == []
    assert len(outcomes) == PROCESSES * THREADS
    assert fake.refresh_count(installed_portal) == 1
