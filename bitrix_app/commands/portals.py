"""`flask --app app portals list|show|refresh|rotate-keys`: installed portals and their token health (never token values)."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from ..services.automation import (
    DEFAULT_REFRESH_AGE_DAYS,
    DEFAULT_WORKERS,
    installed_member_ids,
    portal_history,
    portal_summaries,
    portal_summary,
    refresh_portals,
    rotate_token_keys,
)
from .output import bitrix, echo_json, fail, table

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
    summary = portal_summary(session_factory, portal)
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
        click.echo(table(["PORTAL", "STATUS", "DETAIL"],
                         [[o.detail.get("domain", o.portal), o.status, o.reason or o.detail.get("token_expires_at", "")]
                          for o in ordered]) if ordered else "No installed portals.")
    if any(outcome.failed for outcome in ordered):
        raise SystemExit(1)


@portals.command("rotate-keys")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def rotate_keys(as_json: bool):
    """Re-encrypt every stored token with the first key of TOKEN_ENCRYPTION_KEYS.

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
