"""Benchmark: the connector gateway's `urlData` from PostgreSQL, through the app under gunicorn.

    .venv/bin/python bench/gateway.py [--rows 1000000] [--big-rows 3000000] [--rounds 3]

Creates a throwaway PostgreSQL database (`gw_bench_<random>`) with a table of `--big-rows` rows
x 10 columns of mixed types, starts the fake Bitrix24 in this process and the app under gunicorn
(gthread, 1 worker, 4 threads; a SQLite app database migrated with `flask db upgrade`), installs
the app on a fake portal and adds the bench database through the tab's API, as an administrator
would. Then, in one run:

1. Throughput, `--rounds` rounds, the readers interleaved in each: the floor (psycopg
   `COPY (SELECT the 10 columns ... LIMIT rows) TO STDOUT`, every byte read), a diagnostic COPY of
   the SELECT the app itself sends (each row rendered as JSON text: what PostgreSQL alone can do
   for the app), and the app (POST urlData with `limit` and `select[0..9]`, the body streamed
   with requests). Median rows/s, each against the floor, and the CPU seconds each request cost
   the PostgreSQL backend, the gunicorn worker and this process (the client), from /proc.
2. Memory: VmRSS of the gunicorn worker (not the master), sampled every 50 ms during every app
   request, against the worker's RSS after a small warm-up request; the 3M-row request runs last.

Every body is checked: header row, row count, 10 cells per row (the first one parsed as JSON in
full, outside the timing). Prints a table and writes its section into bench/results.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bitrix_app.gateway.kinds.postgresql import APPLICATION_NAME  # noqa: E402
from bitrix_app.sandbox.fake import FakeBitrix24, phpform  # noqa: E402
from bitrix_app.services.crypto import TokenCipher  # noqa: E402

PG = "host=127.0.0.1 port=5432 user=postgres"
COLUMNS = "id, qty, amount, rate, label, code, day, created_at, active, note"


def app_select() -> str:
    """What the gateway asks PostgreSQL for, per row, compiled from its own code
    (kinds/postgresql.py `json_row`); the run checks that its COPY output is the app's body."""
    from sqlalchemy import BigInteger, Boolean, Date, DateTime, Float, Integer, Numeric, Text, column
    from sqlalchemy.dialects.postgresql import psycopg as dialect

    from bitrix_app.gateway.kinds import KINDS

    cells = [(column("id", BigInteger()), "int"), (column("qty", Integer()), "int"),
             (column("amount", Numeric()), "double"), (column("rate", Float()), "double"),
             (column("label", Text()), "string"), (column("code", Text()), "string"),
             (column("day", Date()), "date"), (column("created_at", DateTime()), "datetime"),
             (column("active", Boolean()), "int"), (column("note", Text()), "string")]
    expression = KINDS["postgresql"].json_row(cells)
    return str(expression.compile(dialect=dialect.dialect(), compile_kwargs={"literal_binds": True}))


APP_SELECT = app_select()
CLIENT_ID, CLIENT_SECRET = "app.bench.gateway", "bench-gateway-client-secret"
SECTION = "## Connector gateway: urlData from PostgreSQL"
GUNICORN = ["--worker-class", "gthread", "--workers", "1", "--threads", "4"]


# --- setup --------------------------------------------------------------------------------------

def create_database(name: str, rows: int) -> None:
    with psycopg.connect(f"{PG} dbname=test", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(f"{PG} dbname={name}", autocommit=True) as db:
        db.execute("""CREATE TABLE bench (id bigint, qty integer, amount numeric(12,2), rate double precision,
                      label text, code varchar(32), day date, created_at timestamp, active boolean, note text)""")
        db.execute("""INSERT INTO bench SELECT g, (g * 7919) %% 100000, ((g * 37) %% 10000000) / 100.0,
                      g / 7.0, substr(md5(g::text), 1, 20), 'C-' || (g %% 1000), date '2020-01-01' + (g %% 2000)::int,
                      timestamp '2020-01-01' + g * interval '17 seconds', g %% 3 = 0,
                      CASE WHEN g %% 5 = 0 THEN NULL ELSE 'note ' || g END
                      FROM generate_series(1::bigint, %s) AS g""", (rows,))
        db.execute("VACUUM (FREEZE, ANALYZE) bench")
        # Every `LIMIT n` scan starts at the first block, so all readers get the same rows.
        db.execute(f'ALTER DATABASE "{name}" SET synchronize_seqscans = off')


def drop_database(name: str) -> None:
    with psycopg.connect(f"{PG} dbname=test", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_app(folder: str, fake_url: str, port: int, log) -> subprocess.Popen:
    env = dict(os.environ, SECRET_KEY=secrets.token_hex(32), BITRIX_CLIENT_ID=CLIENT_ID,
               BITRIX_CLIENT_SECRET=CLIENT_SECRET, TOKEN_ENCRYPTION_KEYS=TokenCipher.generate_key(),
               APP_PUBLIC_URL=f"http://127.0.0.1:{port}", DATABASE_URL=f"sqlite:///{folder}/app.db",
               BITRIX_OAUTH_SERVER=fake_url, BITRIX_ALLOW_INSECURE="1", GATEWAY_ALLOWED_NETWORKS="127.0.0.1/32",
               GATEWAY_MAX_ROWS="5000000", GATEWAY_STATEMENT_TIMEOUT="300",
               ALLOW_SQLITE="1")  # the app's own small database; the bench database is PostgreSQL
    bin_ = Path(sys.executable).parent
    subprocess.run([str(bin_ / "flask"), "--app", "app", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   stdout=log, stderr=log)
    return subprocess.Popen([str(bin_ / "gunicorn"), "app:app", *GUNICORN, "--bind", f"127.0.0.1:{port}"],
                            cwd=ROOT, env=env, stdout=log, stderr=log)


def worker_pid(master: subprocess.Popen, url: str) -> int:
    """Wait until the app answers, then return the one worker's pid (the master's child)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if master.poll() is not None:
            raise RuntimeError("gunicorn exited; see its log")
        try:
            if requests.get(f"{url}/gateway/x/check", timeout=2).status_code == 405:
                children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
                if len(children) == 1:
                    return int(children[0])
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the app did not come up within 60 s")


def add_bench_database(fake: FakeBitrix24, url: str, name: str) -> tuple[str, dict, dict]:
    """Install the app, add the database through the tab's API → (urlData, settings, describe)."""
    portal = fake.add_portal(domain="bench.bitrix24.test")
    assert fake.install(portal).status_code == 200
    fake.finish_install(portal)
    page = fake.open_app(portal).text
    token = re.search(r'<meta name="session-token" content="([^"]+)"', page).group(1)
    answer = requests.post(f"{url}/api/databases", headers={"Authorization": f"Bearer {token}"}, timeout=60, json={
        "title": "Bench", "kind": "postgresql", "host": "127.0.0.1", "port": 5432, "database": name,
        "user": "postgres", "password": "", "tlsMode": "disable"})
    assert answer.status_code == 201, answer.text
    source = portal.sources[answer.json()["result"]["sourceId"]]
    connector = portal.connectors[source["connectorId"]]
    settings = {item["code"]: item["value"] for item in source["settings"]}

    def call(endpoint, data):
        reply = requests.post(connector[endpoint], data=phpform.encode({**data, "connection": settings}), timeout=60)
        assert reply.status_code == 200, reply.text
        return reply.json()

    table = next(entry["id"] for entry in call("urlTableList", {"searchString": ""}) if entry["title"] == "bench")
    columns = call("urlTableDescription", {"table": table})
    return connector["urlData"], settings, {"table": table, "select": [column["code"] for column in columns]}


# --- measurements ---------------------------------------------------------------------------------

@dataclass
class Run:
    rows: int
    wall: float
    size: int
    pg_cpu: float  # CPU seconds of the PostgreSQL backend(s) serving the read
    client_cpu: float  # CPU seconds of this process (the reading client)
    worker_cpu: float | None = None  # CPU seconds of the gunicorn worker
    peak_kb: int | None = None  # the worker's peak VmRSS during the request

    @property
    def rate(self) -> float:
        return self.rows / self.wall


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def copy_read(name: str, select: str, rows: int, keep: bool = False) -> tuple[Run, bytes]:
    """`COPY (SELECT select FROM bench LIMIT rows) TO STDOUT`, every byte read; the row count is
    PostgreSQL's `COPY n` tag (counting lines in Python would slow the floor down by a third)."""
    with psycopg.connect(f"{PG} dbname={name}") as db, db.cursor() as cursor:
        backend, client = cpu_seconds(db.info.backend_pid), time.process_time()
        started = time.perf_counter()
        size, kept = 0, []
        with cursor.copy(f"COPY (SELECT {select} FROM bench LIMIT {rows}) TO STDOUT") as copy:
            for data in copy:
                size += len(data)
                if keep:
                    kept.append(bytes(data))
        wall = time.perf_counter() - started
        run = Run(rows, wall, size, cpu_seconds(db.info.backend_pid) - backend, time.process_time() - client)
        assert cursor.rowcount == rows, f"COPY gave {cursor.rowcount} rows, expected {rows}"
    return run, b"".join(kept)


class RssSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self):
        while not self.done.is_set():
            self.peak = max(self.peak, rss_kb(self.pid))
            self.done.wait(0.05)

    def stop(self) -> int:
        self.done.set()
        self.join()
        return max(self.peak, rss_kb(self.pid))


def app_backends(admin, name: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend the gateway holds open on the bench database."""
    pids = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                         (name, APPLICATION_NAME)).fetchall()
    return {pid: cpu_seconds(pid) for (pid,) in pids}


def app_request(app: dict, rows: int, parse: bool = False) -> tuple[Run, bytes]:
    """POST urlData, stream the body; checks it afterwards (outside the timing)."""
    query, pid = app["query"], app["pid"]
    body = phpform.encode({**query, "limit": str(rows), "connection": app["settings"]})
    sampler = RssSampler(pid)
    sampler.start()
    chunks, size = [], 0
    backends, worker, client = app_backends(app["admin"], app["name"]), cpu_seconds(pid), time.process_time()
    started = time.perf_counter()
    with requests.post(app["url"], data=body, stream=True, timeout=900) as reply:
        status = reply.status_code
        for chunk in reply.iter_content(1 << 20):
            chunks.append(chunk)
            size += len(chunk)
    wall = time.perf_counter() - started
    client, worker = time.process_time() - client, cpu_seconds(pid) - worker
    pg = sum(cpu - backends.get(backend, 0.0) for backend, cpu in app_backends(app["admin"], app["name"]).items())
    run = Run(rows, wall, size, pg, client, worker, sampler.stop())
    data = b"".join(chunks)
    assert status == 200, f"urlData answered {status}: {data[:500]!r}"
    assert data.startswith(b"[" + json.dumps(query["select"], ensure_ascii=False).encode() + b",["), data[:300]
    assert data.endswith(b"]]"), f"the body does not end as a complete JSON array: {data[-300:]!r}"
    assert data.count(b"],[") == rows, f"{data.count(b'],[')} rows in the body, expected {rows}"
    if parse:
        parsed = json.loads(data)
        assert len(parsed) == rows + 1 and all(len(row) == len(query["select"]) for row in parsed), "bad shape"
    return run, data


# --- report -------------------------------------------------------------------------------------

def machine() -> list[str]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))) / 1024 / 1024
    with psycopg.connect(f"{PG} dbname=test") as db:
        version = db.execute("SHOW server_version").fetchone()[0]
        buffers = db.execute("SHOW shared_buffers").fetchone()[0]
    from importlib.metadata import version as package
    return [f"Linux {platform.release()}, {model}, {os.cpu_count()} vCPUs (nproc), {memory:.0f} GiB RAM",
            f"Python {platform.python_version()}, gunicorn {package('gunicorn')}, psycopg {package('psycopg')}, "
            f"SQLAlchemy {package('SQLAlchemy')}, requests {package('requests')}",
            f"PostgreSQL {version} on the same machine (shared_buffers {buffers}); client, app and database "
            f"share the {os.cpu_count()} vCPUs"]


def write_section(path: Path, text: str) -> None:
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    start = current.find(SECTION)
    if start >= 0:
        following = current.find("\n## ", start + len(SECTION))
        current = current[:start].rstrip() + ("\n\n" + current[following + 1:] if following >= 0 else "")
    path.write_text(current.rstrip() + "\n\n" + text.rstrip() + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=3_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=str(Path(__file__).with_name("results.md")))
    options = parser.parse_args()
    name = f"gw_bench_{secrets.token_hex(4)}"
    fake = master = admin = None
    with tempfile.TemporaryDirectory() as folder, open(Path(folder) / "app.log", "w+") as log:
        try:
            started_at = datetime.now(timezone.utc)
            print(f"creating {name} with {max(options.rows, options.big_rows):,} rows", file=sys.stderr)
            create_database(name, max(options.rows, options.big_rows))
            admin = psycopg.connect(f"{PG} dbname=test", autocommit=True)
            fake = FakeBitrix24(CLIENT_ID, CLIENT_SECRET)
            fake.start()
            port = free_port()
            fake.app_url = f"http://127.0.0.1:{port}"
            master = start_app(folder, fake.url, port, log)
            pid = worker_pid(master, fake.app_url)
            url, settings, query = add_bench_database(fake, fake.app_url, name)
            app = {"url": url, "settings": settings, "query": query, "pid": pid, "admin": admin, "name": name}

            # Warm-up: the worker's imports, engine and catalog; the table into the page cache.
            _, body = app_request(app, 1000, parse=True)
            _, lines = copy_read(name, APP_SELECT, 1000, keep=True)
            header = json.dumps(query["select"], ensure_ascii=False).encode()
            assert body == b"[" + header + b"," + lines.rstrip(b"\n").replace(b"\n", b",") + b"]", \
                "APP_SELECT does not render what the app sends"
            copy_read(name, COLUMNS, max(options.rows, options.big_rows))
            baseline = rss_kb(pid)

            floor, app_sql, served = [], [], []
            for number in range(options.rounds):
                floor.append(copy_read(name, COLUMNS, options.rows)[0])
                app_sql.append(copy_read(name, APP_SELECT, options.rows)[0])
                served.append(app_request(app, options.rows, parse=number == 0)[0])
                print(f"round {number + 1}: COPY {floor[-1].rate:,.0f} rows/s, COPY of the app's SELECT "
                      f"{app_sql[-1].rate:,.0f}, app {served[-1].rate:,.0f}; worker peak "
                      f"{served[-1].peak_kb / 1000:.0f} MB", file=sys.stderr)
            big = app_request(app, options.big_rows)[0]
            hwm = rss_kb(pid, "VmHWM")
        except Exception:
            log.seek(0)
            print("--- app log (tail) ---\n" + "".join(log.readlines()[-40:]), file=sys.stderr)
            raise
        finally:
            if master is not None:
                master.terminate()
                master.wait(timeout=30)
            if fake is not None:
                fake.stop()
            if admin is not None:
                admin.close()
            drop_database(name)
    section = report(options, started_at, floor, app_sql, served, big, baseline, hwm)
    print(section)
    write_section(Path(options.output), section)
    print(f"written to {options.output}")


def report(options, started_at, floor, app_sql, served, big, baseline, hwm) -> str:
    mb = lambda kb: kb * 1024 / 1e6  # noqa: E731  (/proc reports kB; 1 MB = 10^6 bytes)
    median = lambda runs, field: statistics.median(getattr(run, field) for run in runs)  # noqa: E731
    floor_rate = median(floor, "rate")
    peak_1m = max(run.peak_kb for run in served)
    growth_1m, growth_big = mb(peak_1m - baseline), mb(big.peak_kb - baseline)

    def line(reader, runs, kind, rss=None):
        rate, worker = median(runs, "rate"), (median(runs, "worker_cpu") if runs[0].worker_cpu is not None else None)
        cpu = f"{median(runs, 'pg_cpu'):.1f} / " + (f"{worker:.1f}" if worker is not None else "–") \
            + f" / {median(runs, 'client_cpu'):.1f}"
        each = ", ".join(f"{run.rate:,.0f}" for run in runs) if len(runs) > 1 else "one request"
        return (f"| {reader} | {runs[0].rows:,} | {rate:,.0f} | {rate / floor_rate:.2f} | {runs[0].rows / rate:.2f} s "
                f"| {median(runs, 'size') / 1e6:.0f} MB ({kind}) | {cpu} | {rss or '–'} | {each} |")

    table = [
        "| Reader | Rows | Rows/s (median) | × floor | Wall | Body | CPU s: PostgreSQL / worker / client "
        "| Worker peak RSS (growth) | Each round, rows/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        line("COPY floor: `COPY (SELECT <10 columns> ...) TO STDOUT`", floor, "text"),
        line("COPY of the app's own SELECT (one JSON text per row; diagnostic)", app_sql, "text"),
        line("**App**: POST urlData under gunicorn", served, "JSON", f"{mb(peak_1m):.0f} MB (+{growth_1m:.0f})"),
        line("**App**: POST urlData under gunicorn", [big], "JSON", f"{mb(big.peak_kb):.0f} MB (+{growth_big:.0f})"),
    ]
    ratio = median(served, "rate") / floor_rate
    ceiling = median(app_sql, "rate")
    met = lambda ok: "met" if ok else "**missed**"  # noqa: E731
    targets = [
        f"- Throughput ≥ 0.5 × the COPY floor: app/floor = **{ratio:.2f}** ({met(ratio >= 0.5)}"
        + ("" if ratio >= 0.5 else f", by {0.5 * floor_rate - median(served, 'rate'):,.0f} rows/s") + ").",
        f"- Worker RSS growth ≤ 100 MB: +{growth_1m:.0f} MB at {options.rows:,} rows, +{growth_big:.0f} MB at "
        f"{options.big_rows:,} rows ({met(max(growth_1m, growth_big) <= 100)}).",
        f"- Growth independent of the row count: {growth_big - growth_1m:+.0f} MB from {options.rows:,} to "
        f"{options.big_rows:,} rows ({met(abs(growth_big - growth_1m) <= 10)}; tolerance ±10 MB).",
    ]
    pg, floor_pg, worker = median(served, "pg_cpu"), median(floor, "pg_cpu"), median(served, "worker_cpu")
    wall = options.rows / median(served, "rate")
    reading = [
        f"- PostgreSQL alone renders the app's SELECT at {ceiling:,.0f} rows/s ({ceiling / floor_rate:.2f} × the "
        "floor), " + ("so the SQL-side rendering alone keeps the app below the target, before any Python runs"
                      if ceiling < 0.5 * floor_rate else "which leaves room for the target")
        + f"; the app delivers {median(served, 'rate') / ceiling:.2f} of that ceiling.",
        f"- Where the app's time goes ({options.rows:,} rows, medians): the PostgreSQL backend spends {pg:.1f} s "
        f"of CPU on the app's query against {floor_pg:.1f} s on the floor's ({pg / max(floor_pg, 0.01):.1f} ×: "
        f"rendering each row as JSON text: casts, `to_json` for strings, `concat_ws`); the gunicorn worker "
        f"spends {worker:.1f} s (psycopg hands COPY data over one row at a time). "
        f"Together {pg + worker:.1f} s of CPU against a wall time of {wall:.1f} s on {os.cpu_count()} vCPUs"
        + (": the server and the worker already overlap (COPY streams), and both are busy."
           if pg + worker >= 1.5 * wall else ": they overlap only partly."),
        f"- The floor itself is partly bound by its Python client ({median(floor, 'client_cpu'):.1f} s of client "
        f"CPU in {options.rows / floor_rate:.1f} s: psycopg yields one chunk per row); a faster client would "
        "raise the floor, not the app.",
    ]
    command = f".venv/bin/python bench/gateway.py --rows {options.rows} --big-rows {options.big_rows} " \
              f"--rounds {options.rounds}"
    return "\n".join([
        SECTION, "", f"Run {started_at:%Y-%m-%d %H:%M} UTC: `{command}`", "",
        *[f"- Machine: {text}" if n == 0 else f"- {text}" for n, text in enumerate(machine())],
        f"- Table: {max(options.rows, options.big_rows):,} rows × 10 columns (bigint, integer, numeric(12,2), "
        "double precision, text of 20 chars, varchar, date, timestamp, boolean, text with 20 % NULL), no index, "
        "vacuumed, in the page cache (a full COPY before measuring); `synchronize_seqscans = off` on the bench "
        "database, so every reader gets the same first rows.",
        f"- App: `gunicorn app:app {' '.join(GUNICORN)}`, production config (`app.py`), SQLite app database, "
        "GATEWAY_MAX_ROWS=5000000, GATEWAY_STATEMENT_TIMEOUT=300; the fake Bitrix24 runs in the benchmark's "
        "process; the bench database was added through `POST /api/databases`.",
        "- Request: urlData with `limit` and `select[0..9]` = the 10 column codes from the description endpoint; "
        "the body streamed with requests (`iter_content(1 MiB)`) and checked afterwards (header, row count, complete "
        "array; round 1 parsed as JSON in full). A 1,000-row warm-up answer matched the diagnostic SELECT's COPY "
        f"output byte for byte. {options.rounds} rounds, the three readers interleaved in each; rows/s is the "
        "median, every round shown.",
        "- CPU: seconds of CPU time per request (median), from /proc: the PostgreSQL backend(s) serving it, the "
        "gunicorn worker, and the benchmark process (the client).",
        f"- RSS: VmRSS of the gunicorn worker (not the master) sampled every 50 ms during each request; growth is "
        f"against {mb(baseline):.0f} MB after the warm-up; the {options.big_rows:,}-row request ran last. "
        f"The worker's VmHWM at the end: {mb(hwm):.0f} MB. 1 MB = 10^6 bytes.",
        "", *table, "", "Targets:", "", *targets, "", "Reading the numbers:", "", *reading, "",
    ])


if __name__ == "__main__":
    main()
