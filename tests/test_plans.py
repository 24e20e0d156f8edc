"""Plans: loading, diff, apply in batches of 50, partial failure, idempotence, secrets, time limits."""
import json
import socket
import sqlite3
import textwrap
import threading
import time

import pytest
from sqlalchemy import event, select

from bitrix_app.models import ChangeRecord, Database, GatewayConnector, Portal
from bitrix_app.services import plans
from bitrix_app.services.plans import PlanError, PlanRunner, parse_plan
from bitrix_app.services.rest import BitrixClient
from bitrix_app.services.validation import EndpointPolicy

SECRET = "pa55-from-the-environment"
WRITE_METHODS = ("biconnector.connector.update", "biconnector.source.update")


@pytest.fixture
def demo(fake, installed_portal):
    return {"portal": installed_portal, **fake.seed_demo(installed_portal)}


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("PLAN_WAREHOUSE_TOKEN", SECRET)


def write_plan(tmp_path, text: str, name: str = "plan.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def apply(runner, plan_path, *options):
    return runner.invoke(args=["plan", "apply", str(plan_path), *options])


READ_METHODS = ("biconnector.connector.list", "biconnector.source.list")


def batches(fake, portal) -> list[list[str]]:
    """The methods of each batch request's commands, in order (a batch's commands are logged before it)."""
    found, commands = [], []
    for entry in fake.requests_log:
        if entry["member_id"] != portal.member_id:
            continue
        if entry["in_batch"]:
            commands.append(entry["method"])
        elif entry["method"] == "batch":
            found, commands = found + [commands], []
    return found


def write_batches(fake, portal) -> list[list[str]]:
    """Batches that could change something: all but those that ran list commands only (the reads)."""
    return [methods for methods in batches(fake, portal)
            if not (methods and all(method in READ_METHODS for method in methods))]


def write_calls(fake, portal) -> int:
    """Every request that could change something: write batches and update calls outside a batch."""
    singles = sum(1 for entry in fake.requests_log if entry["member_id"] == portal.member_id
                  and not entry["in_batch"] and entry["method"] in WRITE_METHODS)
    return len(write_batches(fake, portal)) + singles


DEMO_PLAN = """
    portals: all
    connectors:
      - match: {title: Demo warehouse}
        fields: {description: Managed by plan}
    sources:
      - match: {title: Main warehouse}
        fields:
          description: Primary
          settings: {host: wh1.example.com, token: "${PLAN_WAREHOUSE_TOKEN}"}
      - match: {title: Backup warehouse}
        fields:
          settings: {port: 5433}
"""


# --- loading -----------------------------------------------------------------------------------

def test_environment_values_are_substituted_and_remembered_as_secrets():
    plan = parse_plan({"sources": [{"match": {"id": 1}, "fields": {"settings": {"token": "${PLAN_T}"}}}]},
                      {"PLAN_T": "abc"})
    assert plan.sources[0].fields["settings"]["token"] == "abc"
    assert plan.portals is None
    assert plan.mask("token=abc") == "token=***"


@pytest.mark.parametrize("data, message", [
    ({"sources": [{"match": {"id": 1}, "fields": {"settings": {"t": "${PLAN_MISSING}"}}}]}, "PLAN_MISSING is not set"),
    ({"sources": [{"match": {"name": "x"}, "fields": {"title": "y"}}]}, "match must be"),
    ({"sources": [{"match": {"id": 1}, "fields": {}}]}, "fields must be a non-empty mapping"),
    ({"sources": [{"match": {"id": 1}, "fields": {"active": False}}]}, "Analytics hub"),
    ({"connectors": [{"match": {"id": 1}, "fields": {"urlCheck": "ftp://x"}}]}, "http:// or https://"),
    ({"portals": "some", "sources": []}, '"portals" must be'),
    ({"portal": "all"}, "Unknown plan keys: portal"),
])
def test_invalid_plans_are_refused_before_any_portal_is_touched(data, message):
    with pytest.raises(PlanError, match=message):
        parse_plan(data, {})


def test_invalid_plan_file_exits_1_with_the_reason(runner, app, tmp_path):
    path = write_plan(tmp_path, "sources: [{match: {id: 1}, fields: {settings: {t: '${PLAN_NOPE}'}}}]")
    result = apply(runner, path)
    assert result.exit_code == 1
    assert "PLAN_NOPE is not set" in result.output


# --- diff, apply, idempotence --------------------------------------------------------------------

def test_dry_run_prints_a_masked_diff_and_sends_nothing(runner, fake, demo, tmp_path, secret_env):
    result = apply(runner, write_plan(tmp_path, DEMO_PLAN), "--dry-run")

    assert result.exit_code == 0, result.output
    assert "description: 'Sample connector served by the sandbox portal.' -> 'Managed by plan'" in result.output
    assert "settings.token: *** -> ***" in result.output  # secret by the default rule
    assert "settings.host: 'wh1.demo.test' -> 'wh1.example.com'" in result.output  # not secret: shown
    assert "settings.port" not in result.output  # 5433 is already stored: no change
    assert "would change" in result.output and "dry run" in result.output
    assert SECRET not in result.output
    assert write_calls(fake, demo["portal"]) == 0


def test_apply_lands_changes_and_a_second_run_writes_nothing(runner, fake, demo, tmp_path, secret_env):
    plan_path = write_plan(tmp_path, DEMO_PLAN)
    portal = demo["portal"]

    first = apply(runner, plan_path)

    assert first.exit_code == 0, first.output
    assert "changed" in first.output and SECRET not in first.output
    main, backup = (portal.sources[source_id] for source_id in demo["source_ids"])
    assert main["description"] == "Primary"
    assert {row["code"]: row["value"] for row in main["settings"]}["token"] == SECRET
    assert portal.connectors[demo["connector_id"]]["description"] == "Managed by plan"
    assert len(write_batches(fake, portal)) == 1  # connector and source updates together
    fake.clear_log()

    second = apply(runner, plan_path, "--json")

    assert second.exit_code == 0, second.output
    report = json.loads(second.output)
    assert report["summary"] == {"changed": 0, "unchanged": 1, "failed": 0}
    assert write_calls(fake, portal) == 0


def test_json_report_describes_each_update(runner, fake, demo, tmp_path, secret_env):
    result = apply(runner, write_plan(tmp_path, DEMO_PLAN), "--json")
    report = json.loads(result.output)
    assert report["dry_run"] is False
    [portal] = report["portals"]
    assert portal["status"] == "changed" and portal["domain"] == "alpha.bitrix24.test"
    kinds = sorted((u["kind"], u["title"], u["applied"]) for u in portal["updates"])
    assert kinds == [("connector", "Demo warehouse", True), ("source", "Main warehouse", True)]
    assert SECRET not in result.output


def test_plan_in_json_format_with_explicit_portals(runner, fake, demo, tmp_path):
    plan = {"portals": ["alpha.bitrix24.test"],
            "sources": [{"match": {"id": demo["source_ids"][1]}, "fields": {"title": "Reserve warehouse"}}]}
    result = apply(runner, write_plan(tmp_path, json.dumps(plan), "plan.json"))
    assert result.exit_code == 0, result.output
    assert demo["portal"].sources[demo["source_ids"][1]]["title"] == "Reserve warehouse"


def batch_sizes(fake, portal) -> list[int]:
    """Commands per write batch, in order (with `one_write_batch_at_a_time`: the fake logs a
    batch's commands without saying which batch, so batches at the same time would blend)."""
    return [len(methods) for methods in write_batches(fake, portal)]


@pytest.fixture
def one_write_batch_at_a_time(monkeypatch):
    """Write batches one after another, for tests of their sizes: besides the log (see batch_sizes),
    the fake spends urlCheck delays on one shared clock, so batches at the same time would each
    measure the others' checks too (a real portal times each command on its own)."""
    monkeypatch.setattr(plans, "PARALLEL_WRITE_BATCHES", 1)


class WritesInFlight:
    """Write batches as the client sends them: commands each, and how many were in flight then."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now = 0
        self.started: list[tuple[int, int]] = []  # (commands, batches in flight with it)

    @property
    def most(self) -> int:
        return max((in_flight for _, in_flight in self.started), default=0)


@pytest.fixture
def writes_in_flight(monkeypatch):
    seen = WritesInFlight()
    send = BitrixClient._send

    def tracked(self, url, payload):
        commands = payload.get("cmd") if url.endswith("/batch") else None
        if not commands or not any(".update?" in command for command in commands.values()):
            return send(self, url, payload)
        with seen.lock:
            seen.now += 1
            seen.started.append((len(commands), seen.now))
        try:
            time.sleep(0.3)  # long enough for batches sent together to overlap, even on a busy machine
            return send(self, url, payload)
        finally:
            with seen.lock:
                seen.now -= 1

    monkeypatch.setattr(BitrixClient, "_send", tracked)
    return seen


def updates_per_write_batch(fake, portal) -> list[int]:
    return [sum(method in WRITE_METHODS for method in methods) for methods in write_batches(fake, portal)]


def host_updates(ids) -> dict:
    return {"sources": [{"match": {"id": source_id}, "fields": {"settings": {"host": f"db{n}.example.com"}}}
                        for n, source_id in enumerate(ids)]}


def stored_hosts(portal, ids) -> list[str]:
    return [{row["code"]: row["value"] for row in portal.sources[i]["settings"]}["host"] for i in ids]


def test_120_updates_of_a_fast_foreign_connector_are_measured_inside_the_read_then_go_in_full_batches(
        runner, fake, installed_portal, tmp_path, one_write_batch_at_a_time):
    connector_id = fake.seed_demo(installed_portal)["connector_id"]
    ids = [fake.seed_source(installed_portal, {"title": f"Shop {n}", "connectorId": connector_id,
                                               "settings": {"host": "old.example.com"}}) for n in range(120)]
    fake.clear_log()

    result = apply(runner, write_plan(tmp_path, json.dumps(host_updates(ids)), "plan.json"))

    assert result.exit_code == 0, result.output
    # Its urlCheck time is unknown at first: 5, then as many as its measured time allows (at most 50).
    assert updates_per_write_batch(fake, installed_portal) == [5, 50, 50, 15]
    # The 5 rode in the read's second request, with its further pages: 2 reads and 3 more batches.
    assert "biconnector.source.list" in write_batches(fake, installed_portal)[0]
    assert fake.count_requests(installed_portal) == 2 + 3
    assert stored_hosts(installed_portal, ids) == [f"db{n}.example.com" for n in range(120)]


def test_one_bad_item_in_a_batch_is_reported_and_the_others_land(runner, fake, demo, tmp_path):
    good, bad = demo["source_ids"]
    plan = {"sources": [
        {"match": {"id": bad}, "fields": {"settings": {"token": "bad"}}},  # the connector's check refuses it
        {"match": {"id": good}, "fields": {"description": "Still lands"}},
    ]}

    result = apply(runner, write_plan(tmp_path, json.dumps(plan), "plan.json"), "--json")

    assert result.exit_code == 1
    assert len(write_batches(fake, demo["portal"])) == 1
    assert demo["portal"].sources[good]["description"] == "Still lands"
    [portal] = json.loads(result.output)["portals"]
    assert portal["status"] == "failed"
    assert "did not answer" in portal["reason"] and "error status" in portal["reason"]
    outcome = {u["id"]: (u["applied"], u["error_code"]) for u in portal["updates"]}
    assert outcome == {good: (True, None), bad: (False, "SOURCE_UPDATE_CONNECTION_ERROR")}


def test_objects_that_cannot_be_matched_are_reported(runner, fake, demo, tmp_path):
    fake.seed_source(demo["portal"], {"title": "Main warehouse", "connectorId": demo["connector_id"], "settings": {}})
    plan = {"sources": [{"match": {"title": "Main warehouse"}, "fields": {"description": "x"}},
                        {"match": {"title": "Nowhere"}, "fields": {"description": "x"}}]}
    result = apply(runner, write_plan(tmp_path, json.dumps(plan), "plan.json"))
    assert result.exit_code == 1
    assert 'source "Main warehouse": 2 sources have this title; match by id instead.' in result.output
    assert 'source "Nowhere": not found on this portal.' in result.output
    assert write_calls(fake, demo["portal"]) == 0


def test_setting_values_are_checked_against_the_connector(runner, fake, demo, tmp_path):
    plan = {"sources": [{"match": {"id": demo["source_ids"][0]}, "fields": {"settings": {"port": "not a number"}}}]}
    result = apply(runner, write_plan(tmp_path, json.dumps(plan), "plan.json"))
    assert result.exit_code == 1
    assert 'Setting "port" must be an integer.' in result.output
    assert write_calls(fake, demo["portal"]) == 0


def test_a_boolean_change_is_sent_as_a_single_json_call(runner, fake, demo, tmp_path):
    plan = {"connectors": [{"match": {"id": demo["connector_id"]}, "fields": {"supportMapping": True}}],
            "sources": [{"match": {"id": demo["source_ids"][0]}, "fields": {"description": "d"}}]}
    result = apply(runner, write_plan(tmp_path, json.dumps(plan), "plan.json"))
    assert result.exit_code == 0, result.output
    assert demo["portal"].connectors[demo["connector_id"]]["supportMapping"] is True
    assert fake.count_requests(demo["portal"], "biconnector.connector.update") == 1
    assert len(write_batches(fake, demo["portal"])) == 1


def test_clearing_connector_settings_is_sent_as_a_single_json_call(runner, fake, demo, tmp_path):
    """An empty list leaves no key in a batch's query string, so it must not travel in a batch."""
    portal, connector_id = demo["portal"], demo["connector_id"]
    plan = {"connectors": [{"match": {"id": connector_id}, "fields": {"settings": []}}],
            "sources": [{"match": {"id": demo["source_ids"][0]}, "fields": {"description": "d"}}]}
    plan_path = write_plan(tmp_path, json.dumps(plan), "plan.json")

    first = apply(runner, plan_path)

    assert first.exit_code == 0, first.output
    assert portal.connectors[connector_id]["settings"] == []
    assert fake.count_requests(portal, "biconnector.connector.update") == 1
    assert len(write_batches(fake, portal)) == 1  # the source update still goes in a batch
    fake.clear_log()
    second = apply(runner, plan_path)
    assert second.exit_code == 0, second.output
    assert write_calls(fake, portal) == 0


@pytest.mark.parametrize("kind, old_title, new_title", [
    ("sources", "Backup warehouse", "Reserve warehouse"),
    ("connectors", "Demo warehouse", "Stock warehouse"),
])
def test_renaming_by_title_is_idempotent(runner, fake, demo, tmp_path, kind, old_title, new_title):
    plan = {kind: [{"match": {"title": old_title}, "fields": {"title": new_title}}]}
    plan_path = write_plan(tmp_path, json.dumps(plan), "plan.json")
    first = apply(runner, plan_path)
    assert first.exit_code == 0, first.output
    fake.clear_log()

    second = apply(runner, plan_path, "--json")

    assert second.exit_code == 0, second.output
    report = json.loads(second.output)
    assert report["summary"] == {"changed": 0, "unchanged": 1, "failed": 0}
    assert report["portals"][0]["problems"] == []
    assert write_calls(fake, demo["portal"]) == 0


def test_whole_number_int_settings_are_sent_as_digits(runner, fake, demo, tmp_path):
    source_id = demo["source_ids"][0]
    plan_path = write_plan(tmp_path, json.dumps({"sources": [{"match": {"id": source_id},
                                                              "fields": {"settings": {"port": 6432.0}}}]}), "plan.json")
    first = apply(runner, plan_path)
    assert first.exit_code == 0, first.output
    assert {row["code"]: row["value"] for row in demo["portal"].sources[source_id]["settings"]}["port"] == "6432"
    fake.clear_log()
    assert apply(runner, plan_path).exit_code == 0
    assert write_calls(fake, demo["portal"]) == 0


def test_secrets_in_connector_fields_are_masked_too(runner, fake, demo, tmp_path, secret_env):
    plan = "connectors: [{match: {title: Demo warehouse}, fields: {description: 'key ${PLAN_WAREHOUSE_TOKEN}'}}]"
    for options in ((), ("--json",)):
        result = apply(runner, write_plan(tmp_path, plan), "--dry-run", *options)
        assert result.exit_code == 0, result.output
        assert SECRET not in result.output
        assert "***" in result.output


# --- operating-time limit ----------------------------------------------------------------------

class RecordingSleep:
    """Stands in for time.sleep: records the wait and lifts the portal's time limit."""

    def __init__(self, portal):
        self.portal = portal
        self.waits = []

    def __call__(self, seconds):
        self.waits.append(seconds)
        self.portal.operation_time_limit_methods.clear()


def test_operation_time_limit_waits_for_the_reset_then_retries(fake, demo, bitrix):
    portal = demo["portal"]
    portal.operation_time_limit_methods.add("biconnector.connector.list")  # a connectors-only plan lists alone
    sleep = RecordingSleep(portal)
    plan = parse_plan({"connectors": [{"match": {"id": demo["connector_id"]}, "fields": {"description": "x"}}]}, {})

    [report] = PlanRunner(bitrix, plan, sleep=sleep).run([portal.member_id])

    assert report.status == "changed", report.reason
    assert len(sleep.waits) == 1 and 590 <= sleep.waits[0] <= 600  # the fake resets 600 s ahead
    assert portal.connectors[demo["connector_id"]]["description"] == "x"


def test_a_time_limited_read_inside_the_first_batch_waits_and_retries(fake, demo, bitrix):
    portal = demo["portal"]
    portal.operation_time_limit_methods.add("biconnector.source.list")  # read together with connector.list
    sleep = RecordingSleep(portal)
    plan = parse_plan({"sources": [{"match": {"id": demo["source_ids"][0]}, "fields": {"description": "x"}}]}, {})

    [report] = PlanRunner(bitrix, plan, sleep=sleep).run([portal.member_id])

    assert report.status == "changed", report.reason
    # A batch command's error carries no reset time and nothing succeeded before: a minute.
    assert sleep.waits == [60.0]
    assert portal.sources[demo["source_ids"][0]]["description"] == "x"


def test_time_limited_commands_inside_a_batch_are_sent_again(fake, demo, bitrix):
    portal = demo["portal"]
    sleep = RecordingSleep(portal)
    plan = parse_plan({"sources": [{"match": {"id": i}, "fields": {"description": "y"}} for i in demo["source_ids"]]}, {})
    runner = PlanRunner(bitrix, plan, sleep=sleep)
    portal.operation_time_limit_methods.add("biconnector.source.update")  # after the reads, before the batch

    [report] = runner.run([portal.member_id])

    assert report.status == "changed", report.reason
    assert sleep.waits and len(write_batches(fake, portal)) == 2
    assert all(portal.sources[i]["description"] == "y" for i in demo["source_ids"])


# --- source updates and the 60 s cloud request limit (issue 20) -----------------------------------

def description_updates(source_ids, text="Checked") -> dict:
    return {"sources": [{"match": {"id": source_id}, "fields": {"description": text}} for source_id in source_ids]}


def demo_sources(fake, portal, count: int) -> list[int]:
    connector_id = fake.seed_demo(portal)["connector_id"]
    return [fake.seed_source(portal, {"title": f"Shop {n}", "connectorId": connector_id,
                                      "settings": {"host": "db.example.com"}}) for n in range(count)]


def source_updates_sent(fake, portal) -> list[str]:
    return [entry["method"] for entry in fake.requests_log
            if entry["member_id"] == portal.member_id and entry["method"] == "biconnector.source.update"]


@pytest.fixture
def cloud_time_limit(fake):
    fake.config.rest_time_limit = 60.0  # a REST request that takes longer gets the front end's 504
    return fake


def test_a_slow_foreign_connector_gets_batches_that_fit_the_time_limit(cloud_time_limit, installed_portal, bitrix,
                                                                      one_write_batch_at_a_time):
    fake = cloud_time_limit
    fake.config.url_check_delay = 8.0  # seconds each urlCheck takes (on the fake's clock)
    ids = demo_sources(fake, installed_portal, 20)

    [report] = PlanRunner(bitrix.for_jobs(), parse_plan(description_updates(ids), {})).run([installed_portal.member_id])

    assert report.status == "changed", report.reason
    assert batch_sizes(fake, installed_portal) == [5, 3, 3, 3, 3, 3]  # 30 s planned per batch: 5 guessed, then 8 s each
    assert [entry for entry in fake.requests_log if entry["status"] == 504] == []
    assert all(installed_portal.sources[i]["description"] == "Checked" for i in ids)


def test_a_batch_cut_off_by_the_time_limit_is_re_read_and_only_the_rest_sent_again(
        cloud_time_limit, installed_portal, bitrix, one_write_batch_at_a_time):
    fake = cloud_time_limit
    fake.config.url_check_delay = 20.0  # three commands fill the 60 s; the fourth never runs
    ids = demo_sources(fake, installed_portal, 5)

    [report] = PlanRunner(bitrix.for_jobs(), parse_plan(description_updates(ids), {})).run([installed_portal.member_id])

    assert report.status == "changed", report.reason
    assert all(update.applied and update.error is None for update in report.updates)
    assert all(installed_portal.sources[i]["description"] == "Checked" for i in ids)
    assert len(source_updates_sent(fake, installed_portal)) == 5  # 3 landed in the cut batch; none was sent twice
    assert batch_sizes(fake, installed_portal) == [3, 1, 1]  # the cut batch ran 3; then 20 s each: one per batch


@pytest.fixture
def error_pages_after_the_reads(monkeypatch):
    """Once a plan has read the portal, its next `count` requests get an HTML 500 page."""
    def arrange(portal, count: int) -> None:
        read_and_compare = PlanRunner._read_and_compare

        def read_then_fail(self, client, *ride):
            changes = read_and_compare(self, client, *ride)
            portal.html_5xx = count
            return changes

        monkeypatch.setattr(PlanRunner, "_read_and_compare", read_then_fail)
    return arrange


def test_a_write_batch_answered_with_an_error_page_is_re_read_before_anything_is_resent(
        fake, demo, bitrix, error_pages_after_the_reads):
    portal, ids = demo["portal"], demo["source_ids"]
    error_pages_after_the_reads(portal, 1)

    [report] = PlanRunner(bitrix.for_jobs(), parse_plan(description_updates(ids), {})).run([portal.member_id])

    assert report.status == "changed", report.reason
    assert all(portal.sources[i]["description"] == "Checked" for i in ids)
    assert len(source_updates_sent(fake, portal)) == 2  # the error page ran nothing; the re-read said so


def test_an_unknown_outcome_is_reported_as_such_when_the_re_read_fails(fake, demo, bitrix, error_pages_after_the_reads):
    portal, ids = demo["portal"], demo["source_ids"]
    error_pages_after_the_reads(portal, 10)  # the batch and the re-read

    [report] = PlanRunner(bitrix.for_jobs(), parse_plan(description_updates(ids), {})).run([portal.member_id])

    assert report.status == "failed"
    assert len(report.updates) == 2 and not any(update.applied for update in report.updates)
    assert all("may or may not have been saved" in update.error for update in report.updates)
    assert source_updates_sent(fake, portal) == []


def test_gateway_sources_go_out_in_full_batches(fake, installed_portal, open_tab, gateway_sqlite_dir, bitrix,
                                                one_write_batch_at_a_time):
    with sqlite3.connect(gateway_sqlite_dir / "chunks.db") as database:
        database.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY)")
    added = open_tab(installed_portal).post("/databases", json={"title": "Chunks", "kind": "sqlite",
                                                                "database": "chunks.db"})
    assert added.status_code == 201, added.get_json()
    source = installed_portal.sources[added.get_json()["result"]["sourceId"]]
    settings = {row["code"]: row["value"] for row in source["settings"]}  # its key and secret pass our check
    copies = [{"title": f"Copy {n}", "connectorId": source["connectorId"], "settings": settings} for n in range(59)]
    ids = [source["id"]] + [fake.seed_source(installed_portal, copy) for copy in copies]
    fake.clear_log()

    [report] = PlanRunner(bitrix.for_jobs(), parse_plan(description_updates(ids), {})).run([installed_portal.member_id])

    assert report.status == "changed", report.reason
    assert batch_sizes(fake, installed_portal) == [50, 10]  # our own urlCheck is known to be fast


def test_batches_with_measured_check_times_go_out_together_after_the_probe_and_the_connector(
        fake, installed_portal, bitrix, writes_in_flight):
    ids = demo_sources(fake, installed_portal, 220)
    connector_id = installed_portal.sources[ids[0]]["connectorId"]
    plan = {"connectors": [{"match": {"id": connector_id}, "fields": {"description": "Together"}}],
            **description_updates(ids)}

    [report] = PlanRunner(bitrix.for_jobs(), parse_plan(plan, {})).run([installed_portal.member_id])

    assert report.status == "changed", report.reason
    assert all(installed_portal.sources[i]["description"] == "Checked" for i in ids)
    assert installed_portal.connectors[connector_id]["description"] == "Together"
    # The connector and the first 4 sources (its urlCheck not measured yet: 6 s guessed each) alone,
    # then 4 batches of 50 at once, then the last 16.
    assert writes_in_flight.started[0] == (5, 1)
    assert sorted(size for size, _ in writes_in_flight.started[1:]) == [16, 50, 50, 50, 50]
    assert writes_in_flight.most == plans.PARALLEL_WRITE_BATCHES == 4
    assert report.requests == 2 + 6  # reads: first pages, then the rest in one batch


def test_a_new_write_batch_starts_as_soon_as_one_in_flight_finishes(fake, installed_portal, bitrix, monkeypatch):
    ids = demo_sources(fake, installed_portal, 305)  # 5 measured along with the read, then 6 batches of 50
    send, lock, timeline = BitrixClient._send, threading.Lock(), {}

    def slow_first_write_batch(self, url, payload):
        commands = payload.get("cmd") if url.endswith("/batch") else None
        if not commands or "p0" in commands:
            return send(self, url, payload)
        first_id = next(iter(commands.values())).split("id=")[1].split("&")[0]
        started = time.monotonic()
        time.sleep(1.5 if first_id == str(ids[5]) else 0.2)
        try:
            return send(self, url, payload)
        finally:
            with lock:
                timeline[first_id] = (started, time.monotonic())

    monkeypatch.setattr(BitrixClient, "_send", slow_first_write_batch)
    [report] = PlanRunner(bitrix.for_jobs(), parse_plan(description_updates(ids), {})).run([installed_portal.member_id])

    assert report.status == "changed", report.reason
    slow_ends = timeline.pop(str(ids[5]))[1]
    assert len(timeline) == 5
    assert all(started < slow_ends for started, _ in timeline.values())  # the 5th and 6th did not wait for it


def test_a_portal_failure_in_one_of_the_batches_sent_together_fails_the_portal_after_all_finished(
        fake, installed_portal, bitrix, writes_in_flight, monkeypatch):
    ids = demo_sources(fake, installed_portal, 155)  # the probe of 5, then 3 batches of 50 at once
    batch = BitrixClient.batch

    def second_write_batch_fails(self, commands, halt=False):
        if "u0" in commands and commands["u0"][1]["id"] == ids[55]:
            raise plans.BitrixError("expired_token", "The access token provided has expired.", status=401)
        return batch(self, commands, halt)

    monkeypatch.setattr(BitrixClient, "batch", second_write_batch_fails)
    [report] = PlanRunner(bitrix.for_jobs(), parse_plan(description_updates(ids), {})).run([installed_portal.member_id])

    assert report.status == "failed" and report.code == "expired_token"
    landed = [update for update in report.updates if update.applied]
    assert len(landed) == 5 + 50 + 50  # the probe and the two batches sent with the failing one
    assert writes_in_flight.most == 2  # the failing one raised before it was sent
    assert all(installed_portal.sources[update.object_id]["description"] == "Checked" for update in landed)
    assert all(update.error.startswith("not sent") for update in report.updates if not update.applied)


def test_a_portal_of_a_plan_costs_a_handful_of_database_statements(fake, demo, bitrix):
    portal, ids = demo["portal"], demo["source_ids"]
    plan = {"connectors": [{"match": {"id": demo["connector_id"]}, "fields": {"description": "Counted"}}],
            **description_updates(ids)}
    engine, statements = bitrix.session_factory.kw["bind"], []
    seen = lambda _c, _cur, statement, *_: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", seen)
    try:
        [report] = PlanRunner(bitrix.for_jobs(), parse_plan(plan, {})).run([portal.member_id])
    finally:
        event.remove(engine, "before_cursor_execute", seen)

    assert report.status == "changed" and len(report.updates) == 3, report.reason
    # The portal row with its token (once), the secret-setting choices, and the history: one
    # INSERT for the three updates (was 17 statements: the row read twice, one insert per update).
    assert sum("portal_tokens" in statement for statement in statements) == 1
    assert sum("INSERT INTO change_history" in statement for statement in statements) == 1
    assert len(statements) <= 6, statements


def test_a_check_url_measured_on_one_portal_is_not_probed_again_on_the_next(fake, bitrix, one_write_batch_at_a_time):
    first, second = (fake.add_portal(domain=f"{name}.bitrix24.test") for name in ("one", "two"))
    for portal in (first, second):
        fake.install(portal)
        fake.finish_install(portal)
    plan = {"sources": [{"match": {"title": f"Shop {n}"}, "fields": {"description": "Checked"}} for n in range(60)]}
    for portal in (first, second):
        demo_sources(fake, portal, 60)

    reports = list(PlanRunner(bitrix.for_jobs(), parse_plan(plan, {})).run([first.member_id, second.member_id],
                                                                           workers=1))

    assert [report.status for report in reports] == ["changed", "changed"]
    assert batch_sizes(fake, first) == [5, 50, 5]
    assert batch_sizes(fake, second) == [50, 10]  # the same demo connector's urlCheck, measured on the first


# --- the measuring batch rides in the read (issue 10) ---------------------------------------------

def history_rows(bitrix, portal) -> list[tuple[int, list]]:
    """(source id, changes) of every history entry of the portal, oldest first."""
    with bitrix.session_factory() as db:
        portal_id = db.scalar(select(Portal.id).where(Portal.member_id == portal.member_id))
        return [(row.object_id, row.changes) for row in db.scalars(
            select(ChangeRecord).where(ChangeRecord.portal_id == portal_id).order_by(ChangeRecord.id))]


def installed_portals(fake, *names):
    portals = [fake.add_portal(domain=f"{name}.bitrix24.test") for name in names]
    for portal in portals:
        fake.install(portal)
        fake.finish_install(portal)
    return portals


def mixed_batches(fake, portal) -> list[list[str]]:
    """Batches that read lists and write too."""
    return [methods for methods in batches(fake, portal)
            if set(methods) & set(READ_METHODS) and set(methods) & set(WRITE_METHODS)]


def test_1000_id_matched_updates_of_a_foreign_connector_take_two_reads_and_twenty_batches(fake, installed_portal,
                                                                                          bitrix):
    ids = demo_sources(fake, installed_portal, 1000)

    [report] = PlanRunner(bitrix.for_jobs(), parse_plan(host_updates(ids), {})).run([installed_portal.member_id])

    assert report.status == "changed", report.reason
    assert report.requests == 2 + 20  # the 5 measuring updates in the second read, then 995 in batches of 50
    [read_and_measure] = mixed_batches(fake, installed_portal)
    assert read_and_measure.count("biconnector.source.update") == 5
    assert len(source_updates_sent(fake, installed_portal)) == 1000  # each once
    assert stored_hosts(installed_portal, ids) == [f"db{n}.example.com" for n in range(1000)]
    assert len(history_rows(bitrix, installed_portal)) == 1000


def test_the_report_and_the_history_are_the_same_as_without_the_ride(fake, bitrix, monkeypatch):
    riding, alone = installed_portals(fake, "riding", "alone")
    ids = demo_sources(fake, riding, 70)
    assert demo_sources(fake, alone, 70) == ids
    plan = parse_plan(host_updates(ids), {})

    [with_ride] = PlanRunner(bitrix.for_jobs(), plan).run([riding.member_id])
    monkeypatch.setattr(plans, "_rides_along", lambda *_: False)
    [without] = PlanRunner(bitrix.for_jobs(), plan).run([alone.member_id])

    assert mixed_batches(fake, riding) and not mixed_batches(fake, alone)
    assert with_ride.requests == without.requests - 1
    assert [u.to_dict() for u in with_ride.updates] == [u.to_dict() for u in without.updates]
    assert (with_ride.status, len(with_ride.updates)) == ("changed", 70)
    assert history_rows(bitrix, riding) == history_rows(bitrix, alone)


@pytest.mark.parametrize("case", ["title match", "dry run", "if unchanged", "connector entry"])
def test_plans_that_may_not_ride_read_first_and_write_after(fake, installed_portal, bitrix, case):
    ids = demo_sources(fake, installed_portal, 60)
    connector_id = installed_portal.sources[ids[0]]["connectorId"]
    plan = description_updates(ids)
    if case == "title match":
        plan["sources"][0]["match"] = {"title": "Shop 0"}
    if case == "connector entry":
        plan["connectors"] = [{"match": {"id": connector_id}, "fields": {"description": "Also"}}]
    runner = PlanRunner(bitrix.for_jobs(), parse_plan(plan, {}), dry_run=case == "dry run",
                        if_unchanged=case == "if unchanged")

    [report] = runner.run([installed_portal.member_id])

    assert report.status == "changed", report.reason
    assert mixed_batches(fake, installed_portal) == []
    sent = len(source_updates_sent(fake, installed_portal))
    assert sent == (0 if case == "dry run" else 60)
    assert batches(fake, installed_portal)[0] == list(READ_METHODS)  # the first pages, together


def test_an_early_update_refused_by_its_check_is_reported_and_not_sent_again(fake, installed_portal, bitrix):
    ids = demo_sources(fake, installed_portal, 60)
    plan = description_updates(ids)
    plan["sources"][1]["fields"] = {"settings": {"token": "bad"}}  # the demo connector's check refuses it

    [report] = PlanRunner(bitrix.for_jobs(), parse_plan(plan, {})).run([installed_portal.member_id])

    [read_and_measure] = mixed_batches(fake, installed_portal)
    assert read_and_measure.count("biconnector.source.update") == 5
    assert len(source_updates_sent(fake, installed_portal)) == 60
    assert report.status == "failed" and report.reason.startswith(f'source #{ids[1]} "Shop 1"')
    outcome = [(u.object_id, u.applied, u.error_code) for u in report.updates]
    assert outcome == [(i, i != ids[1], None if i != ids[1] else "SOURCE_UPDATE_CONNECTION_ERROR") for i in ids]
    assert sorted(source_id for source_id, _ in history_rows(bitrix, installed_portal)) == sorted(set(ids) - {ids[1]})


def test_early_updates_refused_for_the_time_limit_go_out_again_with_the_rest(fake, installed_portal, bitrix):
    ids = demo_sources(fake, installed_portal, 60)
    installed_portal.operation_time_limit_methods.add("biconnector.source.update")  # the lists still run
    sleep = RecordingSleep(installed_portal)

    [report] = PlanRunner(bitrix.for_jobs(), parse_plan(description_updates(ids), {}), sleep=sleep).run(
        [installed_portal.member_id])

    assert report.status == "changed", report.reason
    [read_and_measure] = mixed_batches(fake, installed_portal)  # its 5 updates were refused
    assert read_and_measure.count("biconnector.source.update") == 5
    assert sleep.waits  # the next batch met the limit too, waited and sent again
    assert all(update.applied for update in report.updates)
    assert all(installed_portal.sources[i]["description"] == "Checked" for i in ids)
    assert len(history_rows(bitrix, installed_portal)) == 60


def test_a_read_and_measure_request_cut_off_is_re_read_and_nothing_is_sent_twice(
        cloud_time_limit, installed_portal, bitrix, one_write_batch_at_a_time):
    fake = cloud_time_limit
    fake.config.url_check_delay = 13.0  # the five checks run (the last starts at 52 s) and end at 65 s: a 504
    ids = demo_sources(fake, installed_portal, 52)

    [report] = PlanRunner(bitrix.for_jobs(), parse_plan(description_updates(ids), {})).run(
        [installed_portal.member_id])

    assert report.status == "changed", report.reason
    [read_and_measure] = mixed_batches(fake, installed_portal)
    assert read_and_measure.count("biconnector.source.update") == 5
    assert [entry["status"] for entry in fake.requests_log if entry["method"] == "batch"][1] == 504
    assert len(source_updates_sent(fake, installed_portal)) == 52  # the 5 landed: re-read, not sent again
    assert [u.object_id for u in report.updates] == ids and all(u.applied and not u.error for u in report.updates)
    rows = history_rows(bitrix, installed_portal)
    assert sorted(source_id for source_id, _ in rows) == sorted(ids)  # one each, the 5 with what they were before
    assert all(changes == [{"field": "description", "old": None, "new": "Checked", "secret": False}]
               for _, changes in rows)


def test_a_read_and_measure_request_answered_with_an_error_page_is_re_read_then_sent(fake, installed_portal, bitrix,
                                                                                     monkeypatch):
    ids = demo_sources(fake, installed_portal, 60)
    riding = plans.MeasuringRide.commands

    along = []

    def error_page_next(ride, read, more):
        installed_portal.html_5xx = 1  # the request these commands go in
        along.append(riding(ride, read, more))
        return along[-1]

    monkeypatch.setattr(plans.MeasuringRide, "commands", error_page_next)
    fake.clear_log()
    [report] = PlanRunner(bitrix.for_jobs(), parse_plan(description_updates(ids), {})).run(
        [installed_portal.member_id])

    assert report.status == "changed", report.reason
    assert [len(commands) for commands in along] == [5]
    assert [entry["status"] for entry in fake.requests_log if not entry["in_batch"]][:2] == [200, 500]
    assert len(source_updates_sent(fake, installed_portal)) == 60  # the error page ran nothing; the re-read said so
    assert all(update.applied and not update.error for update in report.updates)
    assert len(history_rows(bitrix, installed_portal)) == 60


def test_a_time_limited_page_next_to_the_measuring_batch_reads_again_and_sends_nothing_twice(
        fake, installed_portal, bitrix, monkeypatch):
    ids = demo_sources(fake, installed_portal, 60)
    riding = plans.MeasuringRide.commands

    def pages_refused_next(ride, read, more):
        if not ride.went_out:  # the read's first try
            installed_portal.operation_time_limit_methods.add("biconnector.source.list")
        return riding(ride, read, more)

    monkeypatch.setattr(plans.MeasuringRide, "commands", pages_refused_next)
    sleep = RecordingSleep(installed_portal)  # lifts the limit
    [report] = PlanRunner(bitrix.for_jobs(), parse_plan(description_updates(ids), {}), sleep=sleep).run(
        [installed_portal.member_id])

    assert report.status == "changed", report.reason
    assert len(sleep.waits) == 1 and len(mixed_batches(fake, installed_portal)) == 1  # then the read again, alone
    assert len(source_updates_sent(fake, installed_portal)) == 60
    assert [u.object_id for u in report.updates] == ids and all(u.applied for u in report.updates)
    assert len(history_rows(bitrix, installed_portal)) == 60


def test_a_list_page_error_after_the_measuring_batch_fails_the_portal_and_reports_what_landed(
        fake, installed_portal, bitrix, monkeypatch):
    ids = demo_sources(fake, installed_portal, 60)
    batch = BitrixClient.batch

    def page_fails_next_to_updates(self, commands, halt=False):
        outcome = batch(self, commands, halt)
        if "u0" in commands and "p0" in commands:
            outcome.errors["p0"] = plans.BitrixError("INTERNAL_SERVER_ERROR", "The list failed.")
        return outcome

    monkeypatch.setattr(BitrixClient, "batch", page_fails_next_to_updates)
    [report] = PlanRunner(bitrix.for_jobs(), parse_plan(description_updates(ids), {})).run(
        [installed_portal.member_id])

    assert report.status == "failed" and report.code == "INTERNAL_SERVER_ERROR"
    assert [(u.object_id, u.applied) for u in report.updates] == [(i, True) for i in ids[:5]]
    assert sorted(source_id for source_id, _ in history_rows(bitrix, installed_portal)) == ids[:5]
    assert len(source_updates_sent(fake, installed_portal)) == 5


# --- only PLAN_ variables may be substituted (issue 10) ---------------------------------------------

def description_plan(reference: str) -> dict:
    return {"connectors": [{"match": {"id": 1}, "fields": {"description": f"key {reference}"}}]}


@pytest.mark.parametrize("name", ["BITRIX_CLIENT_SECRET", "SECRET_KEY", "DATABASE_URL", "WAREHOUSE_DB_PASSWORD"])
def test_variables_outside_the_prefix_are_refused_even_when_set(name):
    with pytest.raises(PlanError) as excinfo:
        parse_plan(description_plan(f"${{{name}}}"), {name: "the-real-secret"})
    message = str(excinfo.value)
    assert f"${{{name}}}" in message and "PLAN_" in message and "PLAN_ENV_PREFIX" in message
    assert "the-real-secret" not in message


def test_the_prefix_setting_itself_is_not_substituted():
    with pytest.raises(PlanError, match=r"\$\{PLAN_ENV_PREFIX\}"):
        parse_plan(description_plan("${PLAN_ENV_PREFIX}"), {"PLAN_ENV_PREFIX": "PLAN_"})


def test_the_prefix_is_configurable():
    environ = {"PLAN_ENV_PREFIX": "BI_", "BI_TOKEN": "abc", "PLAN_TOKEN": "xyz"}
    plan = parse_plan(description_plan("${BI_TOKEN}"), environ)
    assert plan.connectors[0].fields["description"] == "key abc"
    with pytest.raises(PlanError, match=r"\$\{PLAN_TOKEN\}.*BI_"):
        parse_plan(description_plan("${PLAN_TOKEN}"), environ)


@pytest.mark.parametrize("prefix", ["", "1X", "A-B"])
def test_an_unusable_prefix_is_refused(prefix):
    with pytest.raises(PlanError, match="PLAN_ENV_PREFIX must be"):
        parse_plan(description_plan("${PLAN_TOKEN}"), {"PLAN_ENV_PREFIX": prefix, "PLAN_TOKEN": "x"})


def test_cli_fields_refuse_variables_outside_the_prefix(runner, fake, demo, monkeypatch):
    monkeypatch.setenv("BITRIX_CLIENT_SECRET", "the-real-secret")
    result = runner.invoke(args=["connectors", "update", str(demo["connector_id"]),
                                 '{"description": "${BITRIX_CLIENT_SECRET}"}', "--portal", demo["portal"].domain])
    assert result.exit_code == 2
    assert "${BITRIX_CLIENT_SECRET}" in result.output and "PLAN_" in result.output
    assert "the-real-secret" not in result.output
    assert fake.count_requests(demo["portal"], "biconnector.connector.update") == 0


# --- endpoint URLs keep to the address rule, for the operator too ------------------------------

def test_a_plan_cannot_point_an_endpoint_at_an_inner_host(runner, fake, demo, tmp_path):
    plan = write_plan(tmp_path, f"""
        portals: all
        connectors:
          - match: {{id: {demo["connector_id"]}}}
            fields: {{urlCheck: "http://10.0.0.5/check", description: Moved}}
    """)
    result = apply(runner, plan)
    assert result.exit_code == 1
    assert "urlCheck" in result.output and "10.0.0.5 is a private address" in result.output
    assert write_calls(fake, demo["portal"]) == 0
    assert demo["portal"].connectors[demo["connector_id"]]["description"] != "Moved"


def test_a_plan_moves_an_endpoint_to_a_public_host_and_resolves_only_what_changes(fake, demo, bitrix, monkeypatch):
    lookups = []

    def resolver(host, port, **_):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    monkeypatch.setattr(bitrix, "endpoint_policy", EndpointPolicy(resolver=resolver))
    url = "https://bi.partner.test/data"
    plan = parse_plan({"connectors": [{"match": {"id": demo["connector_id"]}, "fields": {"urlData": url}}]}, {})

    [first] = PlanRunner(bitrix.for_jobs(), plan).run([demo["portal"].member_id])
    [second] = PlanRunner(bitrix.for_jobs(), plan).run([demo["portal"].member_id])

    assert (first.status, second.status) == ("changed", "unchanged"), first.reason
    assert demo["portal"].connectors[demo["connector_id"]]["urlData"] == url
    assert lookups == ["bi.partner.test"]  # the second run had nothing to change, so nothing to resolve


# --- ensure: present | absent ----------------------------------------------------------------------

def test_ensure_present_creates_once_and_the_next_run_finds_it(runner, fake, demo, tmp_path):
    portal = demo["portal"]
    plan = {"sources": [{"match": {"title": "Plan warehouse"}, "ensure": "present", "fields": {
        "connectorId": demo["connector_id"], "settings": {"host": "wh9.example.com", "port": 5439, "token": "t9"}}}]}
    path = write_plan(tmp_path, json.dumps(plan), "plan.json")
    dry = apply(runner, path, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert 'new source "Plan warehouse"' in dry.output
    assert "settings.host: - -> 'wh9.example.com'" in dry.output and "settings.token: - -> ***" in dry.output
    first = apply(runner, path, "--json")
    assert first.exit_code == 0, first.output
    [update] = json.loads(first.output)["portals"][0]["updates"]
    assert update["action"] == "add" and update["applied"] and update["id"] in portal.sources
    assert {row["code"]: row["value"] for row in portal.sources[update["id"]]["settings"]}["token"] == "t9"
    second = apply(runner, path, "--json")
    assert json.loads(second.output)["portals"][0]["status"] == "unchanged"
    assert [s["title"] for s in portal.sources.values()].count("Plan warehouse") == 1


def test_ensure_absent_needs_allow_delete_and_explains_refusals(runner, fake, demo, tmp_path):
    portal = demo["portal"]
    plan = {"connectors": [{"match": {"title": "Demo warehouse"}, "ensure": "absent"}],
            "sources": [{"match": {"title": "Backup warehouse"}, "ensure": "absent"}]}
    path = write_plan(tmp_path, json.dumps(plan), "plan.json")
    refused = apply(runner, path)
    assert refused.exit_code == 1 and "DELETE_NOT_ALLOWED" in refused.output and "--allow-delete" in refused.output
    assert len(portal.sources) == 2
    result = apply(runner, path, "--allow-delete", "--json")
    assert result.exit_code == 1  # the connector still has "Main warehouse"
    by_kind = {u["kind"]: u for u in json.loads(result.output)["portals"][0]["updates"]}
    assert by_kind["source"]["applied"] and demo["source_ids"][1] not in portal.sources
    assert by_kind["connector"]["error_code"] == "CONNECTOR_DELETE_RESTRICTED"
    assert "delete its sources first" in by_kind["connector"]["error"]
    with pytest.raises(PlanError, match="no fields"):
        parse_plan({"sources": [{"match": {"id": 1}, "ensure": "absent", "fields": {"title": "x"}}]}, {})


def test_plans_leave_the_gateways_own_connectors_and_sources_alone(bitrix, demo):
    """A gateway connector or a database's source is managed through `databases:`: deleting one,
    or rewriting the source that holds the gateway's key, would break the database."""
    portal = demo["portal"]
    with bitrix.session_factory() as db, db.begin():
        portal_id = db.scalar(select(Portal.id).where(Portal.member_id == portal.member_id))
        db.add(GatewayConnector(portal_id=portal_id, kind="demo", connector_id=demo["connector_id"]))
        db.add(Database(portal_id=portal_id, title="Sales", kind="postgresql", connection_encrypted="x",
                        source_key="key-plan-test", secret_hash="0" * 64, source_id=demo["source_ids"][0]))
    plan = parse_plan({
        "connectors": [{"match": {"id": demo["connector_id"]}, "ensure": "absent"}],
        "sources": [{"match": {"id": demo["source_ids"][0]}, "fields": {"settings": {"host": "elsewhere.test"}}},
                    {"match": {"title": "New shop"}, "ensure": "present", "fields": {"connectorId": demo["connector_id"]}}],
    }, {})

    [report] = PlanRunner(bitrix.for_jobs(), plan).run([portal.member_id])  # --allow-delete is the CLI's check

    assert report.updates == [] and len(report.problems) == 3, report.problems
    assert "secure gateway" in " ".join(report.problems)
    assert demo["connector_id"] in portal.connectors
    assert "elsewhere.test" not in str(portal.sources[demo["source_ids"][0]]["settings"])


# --- many portals: streamed, bounded (issue 10) ----------------------------------------------------

def test_portals_are_taken_from_a_stream_only_as_workers_free_up():
    from bitrix_app.services.automation import run_for_portals

    taken = []

    def stream():
        for number in range(100):
            taken.append(number)
            yield str(number)

    results = run_for_portals(stream(), lambda portal: (portal, len(taken)), lambda portal, exc: None, workers=4)
    seen = [next(results) for _ in range(10)]
    assert max(ahead for _, ahead in seen) <= 10 + 2 * 4  # never the whole stream up front
    assert sorted(int(portal) for portal, _ in seen + list(results)) == list(range(100))


def test_a_plan_for_all_portals_streams_them_from_the_database(fake, demo, bitrix, monkeypatch):
    from bitrix_app.services import plans

    monkeypatch.setattr(plans, "installed_member_ids", lambda *_: pytest.fail("loaded every portal at once"))
    plan = parse_plan({"portals": "all", "connectors": [{"match": {"title": "Demo warehouse"},
                                                         "fields": {"description": "Streamed"}}]}, {})

    reports = list(PlanRunner(bitrix, plan).run())

    assert [(report.member_id, report.status) for report in reports] == [(demo["portal"].member_id, "changed")]
