"""Running work across portals: failing portals are skipped, the pool is bounded, scripts get one client setup."""
import json
import threading
import time

import pytest
from sqlalchemy import update

import bitrix_app
from bitrix_app.config import Config
from bitrix_app.models import Portal, PortalStatus
from bitrix_app.services.automation import respecting_operation_limit, run_for_portals, seconds_until
from bitrix_app.services.errors import BitrixError


def install(fake, domain):
    portal = fake.add_portal(domain=domain)
    fake.install(portal)
    fake.finish_install(portal)
    fake.seed_demo(portal)
    return portal


def set_status(bitrix, portal, status):
    with bitrix.session_factory() as session, session.begin():
        session.execute(update(Portal).where(Portal.member_id == portal.member_id).values(status=status))


PLAN = json.dumps({"sources": [{"match": {"title": "Main warehouse"}, "fields": {"description": "fleet"}}]})


def test_failing_portals_are_reported_and_skipped(runner, fake, bitrix, tmp_path):
    healthy = [install(fake, f"ok{n}.bitrix24.test") for n in range(3)]
    needs_reauth = install(fake, "reauth.bitrix24.test")
    set_status(bitrix, needs_reauth, PortalStatus.NEEDS_REAUTH)
    removed_at_bitrix = install(fake, "gone.bitrix24.test")
    removed_at_bitrix.app_state = "uninstalled"  # Bitrix24 answers APPLICATION_NOT_FOUND
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(PLAN)

    result = runner.invoke(args=["plan", "apply", str(plan_path), "--json", "--workers", "3"])

    assert result.exit_code == 1
    report = {row["domain"]: row for row in json.loads(result.output)["portals"]}
    assert {domain: row["status"] for domain, row in report.items()} == {
        "ok0.bitrix24.test": "changed", "ok1.bitrix24.test": "changed", "ok2.bitrix24.test": "changed",
        "reauth.bitrix24.test": "failed", "gone.bitrix24.test": "failed",
    }
    assert report["reauth.bitrix24.test"]["code"] == "PORTAL_NEEDS_REAUTH"
    assert report["reauth.bitrix24.test"]["requests"] == 0  # nothing was sent to it
    assert report["gone.bitrix24.test"]["code"] == "APPLICATION_NOT_FOUND"
    assert "no longer installed" in report["gone.bitrix24.test"]["reason"]
    assert all(next(iter(p.sources.values()))["description"] == "fleet" for p in healthy)


def test_all_means_every_installed_portal(runner, fake, bitrix, tmp_path):
    kept = install(fake, "kept.bitrix24.test")
    uninstalled = install(fake, "uninstalled.bitrix24.test")
    set_status(bitrix, uninstalled, PortalStatus.UNINSTALLED)
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(PLAN)

    result = runner.invoke(args=["plan", "apply", str(plan_path), "--json"])

    assert result.exit_code == 0, result.output
    assert [row["member_id"] for row in json.loads(result.output)["portals"]] == [kept.member_id]


def test_worker_pool_is_bounded_and_errors_become_outcomes():
    workers = 4
    # Each task waits until `workers` tasks run at once: the peak is reached without relying on
    # timing, and a pool smaller than `workers` breaks the barrier instead of hanging.
    all_workers_busy = threading.Barrier(workers, timeout=10)
    running, peak, lock = 0, 0, threading.Lock()

    def task(portal):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            all_workers_busy.wait()
        finally:
            with lock:
                running -= 1
        if portal == "p3":
            raise BitrixError("NETWORK_ERROR", "unreachable")
        return (portal, "ok")

    results = dict(run_for_portals([f"p{n}" for n in range(12)], task,
                                   lambda portal, exc: (portal, getattr(exc, "code", type(exc).__name__)),
                                   workers=workers))

    assert peak == workers
    assert "BrokenBarrierError" not in results.values()
    assert results["p3"] == "NETWORK_ERROR"
    assert sum(1 for value in results.values() if value == "ok") == 11


def test_operation_time_limit_waits_for_reset_at():
    calls, waits = [], []

    def call():
        calls.append(1)
        if len(calls) == 1:
            raise BitrixError("OPERATION_TIME_LIMIT", "blocked", reset_at=1_000_042.0)
        return "done"

    assert respecting_operation_limit(call, sleep=waits.append, clock=lambda: 1_000_000.0) == "done"
    assert waits == [42.0]


def test_operation_time_limit_gives_up_after_a_few_tries():
    def call():
        raise BitrixError("OPERATION_TIME_LIMIT", "blocked")

    with pytest.raises(BitrixError):
        respecting_operation_limit(call, sleep=lambda _: None, retries=2)
    assert seconds_until(None) == 60.0
    assert seconds_until(time.time() + 10_000) == 600.0  # never longer than Bitrix24's own window


@pytest.fixture
def script_environment(monkeypatch, app, fake):
    """What a script or cron job has: the production settings in the environment."""
    for name in ("SECRET_KEY", "BITRIX_CLIENT_ID", "BITRIX_CLIENT_SECRET", "BITRIX_OAUTH_SERVER",
                 "TOKEN_ENCRYPTION_KEYS", "APP_PUBLIC_URL", "SQLALCHEMY_DATABASE_URI"):
        monkeypatch.setattr(Config, name, app.config[name])
    monkeypatch.setattr(Config, "BITRIX_ALLOW_INSECURE", True)
    monkeypatch.setattr(bitrix_app, "_shared_bitrix", None)


def test_portal_client_for_scripts_is_cached(script_environment, installed_portal):
    first = bitrix_app.portal_client(installed_portal.member_id)
    second = bitrix_app.portal_client("alpha.bitrix24.test")

    assert first.call("user.admin") is True
    assert bitrix_app.shared_bitrix() is bitrix_app.shared_bitrix()
    assert first.http is second.http  # one HTTP pool, one database engine per process
    assert second.throttle is not None  # paced by the shared leaky bucket
