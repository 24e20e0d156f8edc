"""`flask --app app plan apply PLAN`: bring connectors, sources and gateway databases on many portals
to a declared state."""
from __future__ import annotations

import sys
from contextlib import nullcontext

import click
from flask import current_app
from flask.cli import AppGroup

from ..gateway.databases import plan_step
from ..services.automation import DEFAULT_WORKERS
from ..services.history import Actor
from ..services.plans import PlanError, PlanRunner, PortalReport, load_plan
from .output import bitrix, echo_json, fail, table, with_reasons, wrapped

plan = AppGroup("plan", help="Declarative plans for connectors and sources across portals.")


@plan.command("apply")
@click.argument("plan_file", metavar="PLAN", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Read and diff only; send no change.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report instead of text.")
@click.option("--workers", type=click.IntRange(1, 64), default=DEFAULT_WORKERS, show_default=True,
              help="Portals processed at the same time (each keeps to its own rate limit).")
@click.option("--if-unchanged", is_flag=True,
              help="Right before writing, read the objects again; skip (as EDIT_CONFLICT) any that changed "
                   "since the diff read them.")
@click.option("--allow-delete", is_flag=True,
              help="Let entries with `ensure: absent` delete connectors and sources (refused otherwise).")
def apply(plan_file: str, dry_run: bool, as_json: bool, workers: int, if_unchanged: bool, allow_delete: bool):
    """Apply PLAN (YAML or JSON) to its portals: diff each portal, then send only real changes.

    Updates go out in batches of up to 50; a failing portal is reported and skipped. Secrets
    (values from ${PLAN_...} and every source setting value) are never printed. Exits 1 if any
    portal failed, 0 otherwise; running the same plan again changes nothing.
    """
    try:
        loaded = load_plan(plan_file)
    except PlanError as exc:
        fail(str(exc), as_json=as_json, code="INVALID_PLAN")
    if loaded.deletes and not allow_delete:
        fail("The plan deletes connectors or sources (ensure: absent). Review it with --dry-run, then run it "
             "with --allow-delete.", as_json=as_json, code="DELETE_NOT_ALLOWED")
    actor = Actor.operator("plan")
    runner = PlanRunner(bitrix(), loaded, dry_run=dry_run, if_unchanged=if_unchanged, actor=actor,
                        databases=plan_step(bitrix(), current_app.extensions["gateway"], actor, if_unchanged))
    portals = runner.portals()
    reports = _run_with_progress(runner, portals, workers, show=not as_json and sys.stderr.isatty())
    by_portal = {report.portal: report for report in reports}
    ordered = [by_portal[portal] for portal in portals]
    if as_json:
        echo_json({"dry_run": dry_run, "summary": _counts(ordered), "portals": [r.to_dict() for r in ordered]})
    else:
        _print_diffs(ordered, dry_run)
        _print_summary(ordered, dry_run)
    if any(report.status == "failed" for report in ordered):
        raise SystemExit(1)


def _run_with_progress(runner: PlanRunner, portals: list[str], workers: int, show: bool) -> list[PortalReport]:
    bar = click.progressbar(length=len(portals), label="Portals", file=sys.stderr) if show else nullcontext()
    reports = []
    with bar:
        for report in runner.run(portals, workers):
            reports.append(report)
            if show:
                bar.update(1)
    return reports


def _counts(reports: list[PortalReport]) -> dict:
    counts = {"changed": 0, "unchanged": 0, "failed": 0}
    for report in reports:
        counts[report.status] += 1
    return counts


def _print_diffs(reports: list[PortalReport], dry_run: bool) -> None:
    for report in reports:
        if not (report.updates or report.problems):
            continue
        click.echo(f"{report.domain or report.portal} ({report.member_id or '?'})")
        for update in report.updates:
            click.echo(f"  ~ {update.describe()}")
            for change in update.changes:
                click.echo(f"      {change.field}: {change.before} -> {change.after}")
            if update.error:
                code = f" ({update.error_code})" if update.error_code else ""
                click.echo(wrapped(f"    failed{code}", update.error, indent=6))
            elif not dry_run and not update.applied:
                click.echo("    not applied")
        for problem in report.problems:
            click.echo(f"  ! {problem}")
        click.echo()


def _print_summary(reports: list[PortalReport], dry_run: bool) -> None:
    """A table of portals, then each reason on lines of its own (a long one would break the table)."""
    if not reports:
        click.echo("The plan names no portals, and the app is installed nowhere.")
        return
    click.echo(with_reasons(
        table(["PORTAL", "STATUS", "UPDATES", "REQUESTS"],
              [[r.domain or r.portal, _status(r, dry_run), len(r.updates), r.requests] for r in reports]),
        [(r.domain or r.portal, r.reason + (f" ({r.code})" if r.code else "")) for r in reports if r.reason]))
    done = "would change" if dry_run else "changed"
    partly = sum(1 for r in reports if r.status == "failed" and _landed(r, dry_run))
    counts = _counts(reports)
    total = ", ".join([f"{counts['changed']} {done}"] + ([f"{partly} partly {done}"] if partly else [])
                      + [f"{counts['unchanged']} unchanged", f"{counts['failed'] - partly} failed"])
    click.echo(f"\n{total}" + (" (dry run: nothing was sent)" if dry_run else ""))


def _status(report: PortalReport, dry_run: bool) -> str:
    """changed / unchanged / failed, or "1 changed, 1 failed" for a portal where only some updates landed."""
    done = "would change" if dry_run else "changed"
    if report.status != "failed":
        return done if report.status == "changed" else report.status
    landed = _landed(report, dry_run)
    failed = sum(1 for u in report.updates if u.error) + len(report.problems)
    return f"{landed} {done}, {max(failed, 1)} failed" if landed else "failed"


def _landed(report: PortalReport, dry_run: bool) -> int:
    return sum(1 for u in report.updates if not u.error and (dry_run or u.applied))
