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
from ..services.plans import PlanError, PlanRunner, PortalReport, load_plan
from .output import bitrix, echo_json, fail, table

plan = AppGroup("plan", help="Declarative plans for connectors and sources across portals.")


@plan.command("apply")
@click.argument("plan_file", metavar="PLAN", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Read and diff only; send no change.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report instead of text.")
@click.option("--workers", type=click.IntRange(1, 64), default=DEFAULT_WORKERS, show_default=True,
              help="Portals processed at the same time (each keeps to its own rate limit).")
def apply(plan_file: str, dry_run: bool, as_json: bool, workers: int):
    """Apply PLAN (YAML or JSON) to its portals: diff each portal, then send only real changes.

    Updates go out in batches of up to 50; a failing portal is reported and skipped. Secrets
    (values from ${PLAN_...} and every source setting value) are never printed. Exits 1 if any
    portal failed, 0 otherwise; running the same plan again changes nothing.
    """
    try:
        loaded = load_plan(plan_file)
    except PlanError as exc:
        fail(str(exc), as_json=as_json, code="INVALID_PLAN")
    runner = PlanRunner(bitrix(), loaded, dry_run=dry_run,
                        databases=plan_step(bitrix(), current_app.extensions["gateway"]))
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
                click.echo(f"    failed: {update.error}")
            elif not dry_run and not update.applied:
                click.echo("    not applied")
        for problem in report.problems:
            click.echo(f"  ! {problem}")
        click.echo()


def _print_summary(reports: list[PortalReport], dry_run: bool) -> None:
    def status(report: PortalReport) -> str:
        return "would change" if dry_run and report.status == "changed" else report.status

    if not reports:
        click.echo("The plan names no portals, and the app is installed nowhere.")
        return
    click.echo(table(
        ["PORTAL", "STATUS", "UPDATES", "REQUESTS", "REASON"],
        [[r.domain or r.portal, status(r), len(r.updates), r.requests, r.reason] for r in reports],
    ))
    counts = _counts(reports)
    total = f"{counts['changed']} {'would change' if dry_run else 'changed'}, {counts['unchanged']} unchanged, " \
            f"{counts['failed']} failed"
    click.echo(f"\n{total}" + (" (dry run: nothing was sent)" if dry_run else ""))
