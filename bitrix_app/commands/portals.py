"""`flask --app app portals list|show|refresh|rotate-keys|sync-connectors`: installed portals, their token
health (never token values) and the app's own BI Builder connectors on them."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from ..gateway.connectors import sync_connectors
from ..gateway.dates import validate_portal_format
from ..services.tokens import AmbiguousPortal, find_portal
from ..services.automation import (
    DEFAULT_REFRESH_AGE_DAYS,
    DEFAULT_WORKERS,
    PortalOutcome,
    failed_outcome,
    installed_member_ids,
    portal_history,
    portal_summaries,
    portal_summary,
    refresh_portals,
    rotate_token_keys,
    run_for_portals,
)
from .output import bitrix, echo_json, fail, table, with_reasons

portals = AppGroup("portals", help="Installed portals: list them, inspect one, keep their tokens alive.")


@portals.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_portals(as_json: bool):
    """Every portal: member id, domain, status, token expiry and last refresh."""
    summaries = portal_summaries(bitrix().session_factory)
    if as_json:
        echo_json([summary.to_dict() for summary in summaries])
        return
    if not summaries:
        click.echo("No portals yet: the app has not been installed anywhere.")
        return
    click.echo(table(
        ["MEMBER ID", "DOMAIN", "STATUS", "TOKEN EXPIRES", "LAST REFRESH"],
        [[s.member_id, s.domain, s.status, s.token_expires_at, s.last_refresh] for s in summaries],
    ))


@portals.command("show")
@click.argument("portal")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show_portal(portal: str, as_json: bool):
    """One portal (member id or domain) and its latest lifecycle history."""
    session_factory = bitrix().session_factory
    try:
        summary = portal_summary(session_factory, portal)
    except AmbiguousPortal as exc:
        fail(exc.description, as_json=as_json, code=exc.code)
    if summary is None:
        fail(f"No portal with member id or domain {portal!r}.", as_json=as_json, code="PORTAL_NOT_FOUND")
    history = portal_history(session_factory, summary.member_id)
    if as_json:
        echo_json({**summary.to_dict(), "history": history})
        return
    for label, value in summary.to_dict().items():
        click.echo(f"{label.replace('_', ' '):<17} {value if value is not None else '-'}")
    click.echo("\nhistory (newest first)")
    click.echo(table(["AT", "EVENT", "DETAIL"], [[h["at"], h["kind"], h["detail"]] for h in history]) if history
               else "  none")


@portals.command("refresh")
@click.option("--portal", "chosen", multiple=True, metavar="PORTAL", help="Member id or domain; repeatable.")
@click.option("--all", "all_portals", is_flag=True, help="Every portal the app is installed on.")
@click.option("--older-than", "older_than", type=click.FloatRange(min=0), default=DEFAULT_REFRESH_AGE_DAYS,
              show_default=True, metavar="DAYS",
              help="Refresh only token pairs obtained more than DAYS ago (0: refresh regardless).")
@click.option("--workers", type=click.IntRange(1, 64), default=DEFAULT_WORKERS, show_default=True,
              help="Portals refreshed at the same time.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def refresh(chosen: tuple[str, ...], all_portals: bool, older_than: float, workers: int, as_json: bool):
    """Keep idle portals inside the 180-day refresh-token lifetime.

    Bitrix24 may block apps that refresh too often, so only pairs older than --older-than days are
    refreshed. Run it daily from a scheduler: `portals refresh --all`. Exits 1 if any portal failed.
    """
    if bool(chosen) == all_portals:
        raise click.UsageError("Give either --portal (one or more) or --all.")
    targets = list(chosen) or installed_member_ids(bitrix().session_factory)
    outcomes = {outcome.portal: outcome for outcome in refresh_portals(bitrix(), targets, older_than, workers)}
    ordered = [outcomes[portal] for portal in targets]
    if as_json:
        echo_json([{"portal": o.portal, "status": o.status, "reason": o.reason, **o.detail} for o in ordered])
    else:
        shown = [(o.detail.get("domain", o.portal), o) for o in ordered]
        click.echo(with_reasons(table(["PORTAL", "STATUS", "TOKEN EXPIRES"],
                                      [[name, o.status, o.detail.get("token_expires_at")] for name, o in shown]),
                                [(name, o.reason) for name, o in shown]) if ordered else "No installed portals.")
    if any(outcome.failed for outcome in ordered):
        raise SystemExit(1)


@portals.command("rotate-keys")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def rotate_keys(as_json: bool):
    """Re-encrypt every stored token and database credential with the first key of TOKEN_ENCRYPTION_KEYS.

    Put the new key first (keep the old ones after it) in every process's configuration and
    restart them, then run this; afterwards the old keys can be removed. Safe to run again.
    Exits 1 if a token could not be decrypted with any configured key.
    """
    report = rotate_token_keys(bitrix().session_factory, bitrix().settings.encryption_keys)
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(f"Re-encrypted {report.reencrypted} token(s) with the first key; "
                   f"{report.already_current} already used it.")
        for entry in report.unreadable:
            click.echo(f"Cannot decrypt the {entry['token']} of portal {entry['member_id']} "
                       "with any configured key; left unchanged.", err=True)
    if report.unreadable:
        raise SystemExit(1)


@portals.command("sync-connectors")
@click.option("--portal", "chosen", multiple=True, metavar="PORTAL", help="Member id or domain; repeatable.")
@click.option("--all", "all_portals", is_flag=True, help="Every portal the app is installed on.")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--workers", type=click.IntRange(1, 64), default=DEFAULT_WORKERS, show_default=True,
              help="Portals handled at the same time (each still waits for its own rate limit).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def sync_connectors_command(chosen: tuple[str, ...], all_portals: bool, dry_run: bool, workers: int, as_json: bool):
    """Make the app's own BI Builder connectors exist and match their definition on each portal.

    Run it after changing APP_PUBLIC_URL or GATEWAY_KINDS: connectors get the new endpoint URLs
    with biconnector.connector.update. Idempotent. Exits 1 if any portal failed.
    """
    if bool(chosen) == all_portals:
        raise click.UsageError("Give either --portal (one or more) or --all.")
    shared = bitrix()  # worker threads have no app context
    targets = list(chosen) or installed_member_ids(shared.session_factory)
    settings = current_app.extensions["gateway"].settings

    def sync(portal: str) -> PortalOutcome:
        outcomes = sync_connectors(shared, settings, shared.portal(portal).member_id, dry_run=dry_run)
        return PortalOutcome(portal, "ok", detail={"connectors": [outcome.to_dict() for outcome in outcomes]})

    results = {outcome.portal: outcome for outcome in run_for_portals(targets, sync, failed_outcome, workers)}
    ordered = [results[portal] for portal in targets]
    if as_json:
        echo_json([{"portal": o.portal, "status": o.status, "reason": o.reason, **o.detail} for o in ordered])
    else:
        rows = [[o.portal, c["kind"], c["action"], c["connectorId"], ", ".join(c["changed"])]
                for o in ordered if not o.failed for c in o.detail["connectors"]]
        rows += [[o.portal, "-", "failed", "-", "-"] for o in ordered if o.failed]
        click.echo(with_reasons(table(["PORTAL", "KIND", "ACTION", "CONNECTOR", "CHANGED"], rows),
                                [(o.portal, o.reason) for o in ordered if o.failed]) if rows
                   else "No installed portals.")
    if any(outcome.failed for outcome in ordered):
        raise SystemExit(1)


@portals.command("date-format")
@click.argument("portal")
@click.argument("date_format", required=False)
@click.option("--auto", is_flag=True, help="Forget the format: guess day or month first from the separator.")
def date_format_command(portal: str, date_format: str | None, auto: bool):
    """Show or set the portal's FORMAT_DATETIME, e.g. "MM/DD/YYYY H:MI:SS TT".

    BI Builder sends filter dates in the portal's regional format and no REST method tells it;
    set it here when the portal's format is not DD.MM.YYYY or MM/DD/YYYY with a 24-hour clock.
    """
    with bitrix().session_factory() as session, session.begin():
        try:
            found = find_portal(session, portal)
        except AmbiguousPortal as exc:
            fail(exc.description, code=exc.code)
        if found is None:
            fail(f"No portal with member id or domain {portal!r}.", code="PORTAL_NOT_FOUND")
        if auto or date_format:
            try:
                found.date_format = None if auto else validate_portal_format(date_format)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="DATE_FORMAT") from None
        click.echo(f"{found.domain}: {found.date_format or 'guessed from the separator'}")
