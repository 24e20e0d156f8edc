"""The command line through Flask's CLI runner, against the fake Bitrix24 over real HTTP."""
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import click
import pytest
from sqlalchemy import select, update

from bitrix_app.models import Portal, PortalStatus, PortalToken
from bitrix_app.services.crypto import TokenCipher


@pytest.fixture
def demo(fake, installed_portal):
    """The installed portal with one connector (host, port, token settings) and two sources."""
    return {"portal": installed_portal, **fake.seed_demo(installed_portal)}


def stored_token_values(bitrix, member_id) -> list[str]:
    return [bitrix.tokens.current(member_id).value, bitrix.tokens.refresh_token(member_id)]


def invoke(runner, *args):
    return runner.invoke(args=[str(arg) for arg in args])


# --- help everywhere ----------------------------------------------------------------------------

def all_commands(group: click.Group, path=()):
    for name, command in group.commands.items():
        yield path + (name,)
        if isinstance(command, click.Group):
            yield from all_commands(command, path + (name,))


def test_every_command_has_help(app, runner):
    paths = [p for p in all_commands(app.cli) if p[0] in {"portals", "connectors", "sources", "databases", "plan"}]
    assert len(paths) >= 13
    for path in paths:
        result = invoke(runner, *path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output


# --- portals -------------------------------------------------------------------------------------

def test_portals_list_shows_health_but_never_tokens(runner, bitrix, installed_portal):
    result = invoke(runner, "portals", "list")
    assert result.exit_code == 0, result.output
    assert installed_portal.member_id in result.output
    assert "alpha.bitrix24.test" in result.output and "active" in result.output
    for secret in stored_token_values(bitrix, installed_portal.member_id):
        assert secret not in result.output


def test_portals_list_json(runner, installed_portal):
    result = invoke(runner, "portals", "list", "--json")
    rows = json.loads(result.output)
    assert [row["member_id"] for row in rows] == [installed_portal.member_id]
    assert rows[0]["status"] == "active" and rows[0]["token_expires_at"] and rows[0]["last_refresh"]
    assert not any("token" in key and "expires" not in key and "user" not in key for key in rows[0])


def test_portals_show_by_domain_with_history(runner, bitrix, installed_portal):
    result = invoke(runner, "portals", "show", "alpha.bitrix24.test", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["member_id"] == installed_portal.member_id
    assert any(entry["kind"] == "install" for entry in shown["history"])
    for secret in stored_token_values(bitrix, installed_portal.member_id):
        assert secret not in result.output


def test_portals_show_unknown_portal_fails(runner, app):
    result = invoke(runner, "portals", "show", "nowhere.bitrix24.test")
    assert result.exit_code == 1
    assert "No portal" in result.output


def test_refresh_skips_young_tokens_by_default(runner, fake, installed_portal):
    result = invoke(runner, "portals", "refresh", "--portal", installed_portal.member_id)
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output
    assert fake.refresh_count(installed_portal) == 0


def test_refresh_older_than_refreshes_only_old_pairs(runner, fake, bitrix, installed_portal):
    young = fake.add_portal(domain="beta.bitrix24.test")
    fake.install(young)
    fake.finish_install(young)
    old_token = stored_token_values(bitrix, installed_portal.member_id)
    with bitrix.session_factory() as session, session.begin():
        portal_id = session.scalar(select(Portal.id).where(Portal.member_id == installed_portal.member_id))
        session.execute(update(PortalToken).where(PortalToken.portal_id == portal_id)
                        .values(refreshed_at=datetime.now(timezone.utc) - timedelta(days=40)))

    result = invoke(runner, "portals", "refresh", "--all", "--older-than", 30, "--json")

    assert result.exit_code == 0, result.output
    outcomes = {row["domain"]: row["status"] for row in json.loads(result.output)}
    assert outcomes == {"alpha.bitrix24.test": "refreshed", "beta.bitrix24.test": "skipped"}
    assert fake.refresh_count(installed_portal) == 1 and fake.refresh_count(young) == 0
    new_token = stored_token_values(bitrix, installed_portal.member_id)
    assert new_token != old_token
    for secret in old_token + new_token:
        assert secret not in result.output


def portal_needing_reauth(fake, bitrix):
    broken = fake.add_portal(domain="broken.bitrix24.test")
    fake.install(broken)
    fake.finish_install(broken)
    with bitrix.session_factory() as session, session.begin():
        session.execute(update(Portal).where(Portal.member_id == broken.member_id)
                        .values(status=PortalStatus.NEEDS_REAUTH))
    return broken


def test_refresh_reports_a_failed_portal_and_exits_1(runner, fake, bitrix, installed_portal):
    broken = portal_needing_reauth(fake, bitrix)

    result = invoke(runner, "portals", "refresh", "--all", "--older-than", 0)

    assert result.exit_code == 1
    rows, reasons = result.output.split("\n\n")
    lines = {line.split()[0]: line for line in rows.splitlines()[1:]}
    assert "refreshed" in lines["alpha.bitrix24.test"]
    assert "failed" in lines[broken.member_id] and "authorization" not in lines[broken.member_id]
    assert reasons.startswith(f"{broken.member_id}: ") and "authorization" in reasons  # below the table
    assert fake.refresh_count(installed_portal) == 1


def test_refresh_needs_a_choice_of_portals(runner, app):
    assert invoke(runner, "portals", "refresh").exit_code == 2


# --- rotate-keys ---------------------------------------------------------------------------------

def stored_ciphertexts(bitrix) -> list[str]:
    """Every encrypted token in the database: access, refresh and application tokens."""
    with bitrix.session_factory() as session:
        pairs = session.execute(select(PortalToken.access_token_encrypted, PortalToken.refresh_token_encrypted))
        application = session.scalars(select(Portal.application_token_encrypted)
                                      .where(Portal.application_token_encrypted.is_not(None)))
        return [value for pair in pairs for value in pair] + list(application)


@pytest.fixture
def new_key_first(bitrix, encryption_key, monkeypatch) -> str:
    """A fresh key put first in TOKEN_ENCRYPTION_KEYS, the old one kept after it."""
    new_key = TokenCipher.generate_key()
    monkeypatch.setattr(bitrix, "settings", replace(bitrix.settings, encryption_keys=(new_key, encryption_key)))
    monkeypatch.setattr(bitrix.tokens, "cipher", TokenCipher([new_key, encryption_key]))
    return new_key


def test_rotate_keys_reencrypts_every_token_so_the_old_key_can_go(runner, fake, bitrix, installed_portal,
                                                                  new_key_first, monkeypatch):
    tokens_before = stored_token_values(bitrix, installed_portal.member_id)

    result = invoke(runner, "portals", "rotate-keys", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"reencrypted": 3, "already_current": 0, "unreadable": []}
    new_key_only = TokenCipher([new_key_first])
    assert len(stored_ciphertexts(bitrix)) == 3
    for ciphertext in stored_ciphertexts(bitrix):
        new_key_only.decrypt(ciphertext)  # raises if anything still needs the old key
    monkeypatch.setattr(bitrix.tokens, "cipher", new_key_only)
    assert stored_token_values(bitrix, installed_portal.member_id) == tokens_before
    assert bitrix.client(installed_portal.member_id).call("profile")
    assert invoke(runner, "portals", "refresh", "--all", "--older-than", 0).exit_code == 0  # the refresh token too
    assert fake.refresh_count(installed_portal) == 1


def test_rotate_keys_again_changes_nothing(runner, installed_portal, new_key_first):
    assert invoke(runner, "portals", "rotate-keys").exit_code == 0

    result = invoke(runner, "portals", "rotate-keys")

    assert result.exit_code == 0, result.output
    assert "Re-encrypted 0 token(s) with the first key; 3 already used it." in result.output


def test_rotate_keys_reports_a_token_no_key_opens_and_exits_1(runner, bitrix, installed_portal, new_key_first):
    foreign = TokenCipher([TokenCipher.generate_key()]).encrypt("application-token-from-elsewhere")
    with bitrix.session_factory() as session, session.begin():
        session.execute(update(Portal).where(Portal.member_id == installed_portal.member_id)
                        .values(application_token_encrypted=foreign))

    result = invoke(runner, "portals", "rotate-keys", "--json")

    assert result.exit_code == 1
    assert json.loads(result.output) == {
        "reencrypted": 2, "already_current": 0,
        "unreadable": [{"member_id": installed_portal.member_id, "token": "application token"}]}
    assert foreign in stored_ciphertexts(bitrix)  # left as it was


# --- connectors ----------------------------------------------------------------------------------

def test_connectors_list_and_get(runner, demo):
    listed = invoke(runner, "connectors", "list", "--portal", "alpha.bitrix24.test")
    assert listed.exit_code == 0, listed.output
    assert "Demo warehouse" in listed.output and "host, port, token" in listed.output

    got = invoke(runner, "connectors", "get", demo["connector_id"], "--portal", demo["portal"].member_id, "--json")
    assert got.exit_code == 0, got.output
    assert json.loads(got.output)["title"] == "Demo warehouse"


def test_connector_update_lands(runner, fake, demo):
    result = invoke(runner, "connectors", "update", demo["connector_id"], '{"description": "Nightly export"}',
                    "--portal", "alpha.bitrix24.test")
    assert result.exit_code == 0, result.output
    assert "updated: description" in result.output
    assert demo["portal"].connectors[demo["connector_id"]]["description"] == "Nightly export"


def test_connector_update_is_validated_like_the_tab(runner, fake, demo):
    fields = {"settings": [{"name": "Host", "code": "host", "type": "string"}], "urlData": "ftp://x"}
    result = invoke(runner, "connectors", "update", demo["connector_id"], json.dumps(fields),
                    "--portal", "alpha.bitrix24.test")
    assert result.exit_code == 1
    assert 'Parameter "type" is not correct.' in result.output
    assert "urlData" in result.output
    assert fake.count_requests(demo["portal"], "biconnector.connector.update") == 0


def test_bitrix_errors_are_explained(runner, demo):
    result = invoke(runner, "connectors", "get", 999, "--portal", "alpha.bitrix24.test", "--json")
    assert result.exit_code == 1
    error = json.loads(result.output)
    assert error["error"] == "CONNECTOR_NOT_FOUND"
    assert "no such connector" in error["error_description"]


def test_unknown_portal_is_a_clear_error(runner, app):
    result = invoke(runner, "connectors", "list", "--portal", "nowhere.bitrix24.test")
    assert result.exit_code == 1
    assert "not installed the app" in result.output


@pytest.fixture
def two_portals_one_domain(fake, installed_portal):
    """alpha was renamed (the app has not noticed yet) and another portal took its old name."""
    fake.rename_portal(installed_portal, "alpha-renamed.bitrix24.test")
    taker = fake.add_portal(domain="alpha.bitrix24.test")
    assert fake.install(taker).status_code == 200
    fake.finish_install(taker)
    return installed_portal, taker


def test_an_ambiguous_domain_is_refused_naming_the_member_ids(runner, fake, two_portals_one_domain):
    renamed, taker = two_portals_one_domain
    fake.clear_log()

    result = invoke(runner, "connectors", "list", "--portal", "alpha.bitrix24.test")

    assert result.exit_code == 1
    assert "alpha.bitrix24.test" in result.output and "member id" in result.output
    assert renamed.member_id in result.output and taker.member_id in result.output
    assert fake.requests_log == []  # neither portal was asked


def test_a_member_id_still_names_one_portal_when_domains_collide(runner, two_portals_one_domain):
    _renamed, taker = two_portals_one_domain
    result = invoke(runner, "connectors", "list", "--portal", taker.member_id, "--json")
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.output), list)


# --- sources -------------------------------------------------------------------------------------

def test_sources_list_and_get_never_print_secret_setting_values(runner, demo):
    listed = invoke(runner, "sources", "list", "--portal", "alpha.bitrix24.test")
    got = invoke(runner, "sources", "get", demo["source_ids"][0], "--portal", "alpha.bitrix24.test")
    got_json = invoke(runner, "sources", "get", demo["source_ids"][0], "--portal", "alpha.bitrix24.test", "--json")
    for result in (listed, got, got_json):
        assert result.exit_code == 0, result.output
        for value in ("demo-token-1", "demo-token-2"):
            assert value not in result.output
    assert "Main warehouse" in listed.output
    assert "(secret, set)" in got.output and "wh1.demo.test" in got.output and "5432" in got.output
    assert {row["code"]: row.get("value") for row in json.loads(got_json.output)["settings"]} == {
        "host": "wh1.demo.test", "port": "5432", "token": None}


def test_source_update_from_a_file_keeps_the_secret_quiet(runner, fake, demo, tmp_path, monkeypatch):
    monkeypatch.setenv("PLAN_WAREHOUSE_TOKEN", "s3cret-from-env")
    fields = tmp_path / "fields.json"
    fields.write_text(json.dumps({"settings": {"token": "${PLAN_WAREHOUSE_TOKEN}", "port": 6543}}))
    source_id = demo["source_ids"][0]

    result = invoke(runner, "sources", "update", source_id, f"@{fields}", "--portal", "alpha.bitrix24.test")

    assert result.exit_code == 0, result.output
    assert "s3cret-from-env" not in result.output
    stored = {row["code"]: row["value"] for row in demo["portal"].sources[source_id]["settings"]}
    assert stored["token"] == "s3cret-from-env" and stored["port"] == "6543"
    assert demo["portal"].sources[source_id]["title"] == "Main warehouse"  # title kept


def test_source_update_rejects_undeclared_settings(runner, fake, demo):
    result = invoke(runner, "sources", "update", demo["source_ids"][0], '{"settings": {"passwrd": "x"}}',
                    "--portal", "alpha.bitrix24.test", "--json")
    assert result.exit_code == 1
    error = json.loads(result.output)
    assert error["details"][0]["code"] == "UNKNOWN_SETTING_CODE"
    assert fake.count_requests(demo["portal"], "biconnector.source.update") == 0


def test_update_with_broken_json_is_a_usage_error(runner, demo):
    result = invoke(runner, "sources", "update", demo["source_ids"][0], "{not json", "--portal", "alpha.bitrix24.test")
    assert result.exit_code == 2
    assert "not valid JSON" in result.output


# --- the connector gateway: databases and our own connectors ---------------------------------------

def test_databases_add_list_check_update_delete(runner, installed_portal, gateway_sqlite_dir, monkeypatch):
    from bitrix_app.sandbox.demo_data import create_demo_database

    create_demo_database(gateway_sqlite_dir / "cli-demo.db")
    portal = installed_portal.domain
    added = invoke(runner, "databases", "add", '{"title": "Demo", "kind": "sqlite", "database": "cli-demo.db"}',
                   "--portal", portal, "--json")
    assert added.exit_code == 0, added.output
    database_id = json.loads(added.output)["id"]
    listed = invoke(runner, "databases", "list", "--portal", portal)
    assert "Demo" in listed.output and "cli-demo.db" in listed.output
    checked = invoke(runner, "databases", "check", database_id, "--portal", portal)
    assert checked.exit_code == 0 and "connection OK" in checked.output
    monkeypatch.setenv("PLAN_TITLE", "Demo, renamed")
    updated = invoke(runner, "databases", "update", database_id, '{"title": "${PLAN_TITLE}"}', "--portal", portal)
    assert updated.exit_code == 0 and "title" in updated.output
    deleted = invoke(runner, "databases", "delete", database_id, "--portal", portal, "--yes")
    assert deleted.exit_code == 0 and not installed_portal.sources


def test_databases_update_checks_the_version_and_the_history_names_the_operator(
        runner, installed_portal, gateway_sqlite_dir, monkeypatch):
    from bitrix_app.sandbox.demo_data import create_demo_database

    create_demo_database(gateway_sqlite_dir / "cli-history.db")
    monkeypatch.setenv("BITRIX_OPERATOR", "ops-anna")
    portal = installed_portal.domain
    added = invoke(runner, "databases", "add", '{"title": "Demo", "kind": "sqlite", "database": "cli-history.db"}',
                   "--portal", portal, "--json")
    result = json.loads(added.output)
    version = result["item"]["version"]
    assert invoke(runner, "databases", "update", result["id"], '{"title": "Theirs"}', "--portal", portal,
                  "--if-unchanged", version).exit_code == 0

    late = invoke(runner, "databases", "update", result["id"], '{"title": "Mine"}', "--portal", portal,
                  "--if-unchanged", version)

    assert late.exit_code == 1 and "(EDIT_CONFLICT)" in late.output
    assert "title: yours Mine, theirs Theirs" in late.output and "by ops-anna (cli)" in late.output
    assert installed_portal.sources[result["sourceId"]]["title"] == "Theirs"
    shown = invoke(runner, "databases", "get", result["id"], "--portal", portal)
    assert any(line.startswith("lastChange") and line.endswith("ops-anna (cli)") for line in shown.output.splitlines())
    history = invoke(runner, "sources", "history", result["sourceId"], "--portal", portal)
    assert history.exit_code == 0, history.output
    assert "ops-anna (cli)  update  (not revertible)" in history.output
    assert "database.title: Demo -> Theirs" in history.output and "ops-anna (cli)  create" in history.output

    kept = runner.invoke(args=["databases", "delete", str(result["id"]), "--portal", portal], input="n\n")
    assert kept.exit_code == 1 and f'Delete database #{result["id"]} "Theirs" and its Bitrix24 source?' in kept.output
    unasked = invoke(runner, "databases", "delete", result["id"], "--portal", portal, "--json")
    assert unasked.exit_code == 1 and json.loads(unasked.output)["error"] == "CONFIRMATION_REQUIRED"
    assert result["sourceId"] in installed_portal.sources


def test_databases_add_explains_a_refused_connection(runner, installed_portal):
    result = invoke(runner, "databases", "add", '{"title": "X", "kind": "sqlite", "database": "missing.db"}',
                    "--portal", installed_portal.domain)
    assert result.exit_code == 1
    assert "No SQLite file" in result.output


def test_sync_connectors_dry_run_then_for_real(runner, installed_portal, app, fake):
    victim = next(item for item in installed_portal.connectors.values() if "/gateway/" in item["urlCheck"])
    victim["title"] = "Changed on the portal"
    dry = invoke(runner, "portals", "sync-connectors", "--all", "--dry-run")
    assert dry.exit_code == 0 and "would-update" in dry.output
    assert victim["title"] == "Changed on the portal"
    real = invoke(runner, "portals", "sync-connectors", "--portal", installed_portal.domain, "--json")
    assert real.exit_code == 0
    actions = [item["action"] for item in json.loads(real.output)[0]["connectors"]]
    assert sorted(actions) == ["unchanged", "unchanged", "updated"]
    assert victim["title"] != "Changed on the portal"
    assert invoke(runner, "portals", "sync-connectors").exit_code == 2


def test_sync_connectors_puts_a_failed_portals_reason_below_the_table(runner, fake, bitrix, installed_portal):
    broken = portal_needing_reauth(fake, bitrix)

    result = invoke(runner, "portals", "sync-connectors", "--portal", installed_portal.domain,
                    "--portal", broken.member_id)

    assert result.exit_code == 1
    rows, reasons = result.output.split("\n\n")
    failed = [line.split() for line in rows.splitlines() if line.startswith(broken.member_id)]
    assert failed == [[broken.member_id, "-", "failed", "-", "-"]]
    assert reasons.startswith(f"{broken.member_id}: ") and "authoriz" in reasons


def test_portal_date_format_is_validated_and_used(runner, installed_portal, app):
    portal = installed_portal.domain
    assert "guessed" in invoke(runner, "portals", "date-format", portal).output
    assert invoke(runner, "portals", "date-format", portal, "YYYY/QQ").exit_code == 2
    assert "MM/DD/YYYY H:MI:SS TT" in invoke(runner, "portals", "date-format", portal, "MM/DD/YYYY H:MI:SS TT").output
    with app.extensions["bitrix"].session_factory() as session:
        assert session.scalar(select(Portal.date_format)) == "MM/DD/YYYY H:MI:SS TT"
    assert "guessed" in invoke(runner, "portals", "date-format", portal, "--auto").output


def test_show_and_date_format_refuse_an_ambiguous_domain(runner, fake, installed_portal, app):
    from bitrix_app.models import Portal as PortalRow

    with app.extensions["bitrix"].session_factory() as session, session.begin():
        session.add(PortalRow(member_id="other-member", domain=installed_portal.domain, client_endpoint="https://x/rest/",
                              server_endpoint="https://oauth.test/rest/", editor_user_ids=[]))
    for args in (("portals", "show", installed_portal.domain), ("portals", "date-format", installed_portal.domain)):
        result = invoke(runner, *args)
        assert result.exit_code == 1 and "other-member" in result.output, result.output


# --- creating, deleting, testing ---------------------------------------------------------------

def custom_connector(fake) -> dict:
    base = f"{fake.url}/_demo_connector"
    return {"title": "Partner warehouse", "logo": "https://partner.test/logo.svg", "urlCheck": f"{base}/check",
            "urlData": f"{base}/data", "urlTableList": f"{base}/table_list",
            "urlTableDescription": f"{base}/table_description",
            "settings": [{"name": "Host", "code": "host", "type": "STRING"},
                         {"name": "Secret", "code": "apiSecret", "type": "STRING"}], "secretSettings": ["apiSecret"]}


def test_connectors_and_sources_are_added_and_deleted_with_confirmation(runner, fake, demo):
    portal = demo["portal"]
    added = invoke(runner, "connectors", "add", json.dumps(custom_connector(fake)), "--portal", portal.domain, "--json")
    assert added.exit_code == 0, added.output
    connector_id = json.loads(added.output)["id"]
    assert json.loads(added.output)["secretSettings"] == ["apiSecret"]
    fields = {"connectorId": connector_id, "title": "Partner A", "settings": {"host": "a.test", "apiSecret": "psst"}}
    source = invoke(runner, "sources", "add", json.dumps(fields), "--portal", portal.domain)
    assert source.exit_code == 0 and "created" in source.output and "psst" not in source.output
    source_id = max(portal.sources)
    refused = invoke(runner, "connectors", "delete", connector_id, "--portal", portal.domain, "--yes")
    assert refused.exit_code == 1
    assert "CONNECTOR_DELETE_RESTRICTED" in refused.output and "sources first" in refused.output
    kept = runner.invoke(args=["sources", "delete", str(source_id), "--portal", portal.domain], input="n\n")
    assert kept.exit_code == 1 and 'Delete source #' in kept.output and source_id in portal.sources
    assert invoke(runner, "sources", "delete", source_id, "--portal", portal.domain, "--json").exit_code == 1
    deleted = runner.invoke(args=["sources", "delete", str(source_id), "--portal", portal.domain], input="y\n")
    assert deleted.exit_code == 0 and f"Source #{source_id} deleted." in deleted.output
    gone = invoke(runner, "connectors", "delete", connector_id, "--portal", portal.domain, "--yes", "--json")
    assert json.loads(gone.output) == {"deleted": connector_id} and connector_id not in portal.connectors


def test_sources_check_tells_the_outcome_and_exits_1_on_failure(runner, demo):
    portal, source_id = demo["portal"], demo["source_ids"][0]
    ok = invoke(runner, "sources", "check", source_id, "--portal", portal.domain)
    assert ok.exit_code == 0 and "ok. The connector's check URL accepted the connection" in ok.output
    portal.sources[source_id]["settings"][2]["value"] = "bad"
    failed = invoke(runner, "sources", "check", source_id, "--portal", portal.domain, "--json")
    assert failed.exit_code == 1
    assert json.loads(failed.output)["outcome"] == "refused"


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_sources_check_outcomes_are_in_bitrix_lang(runner, demo, gateway_sqlite_dir, monkeypatch, lang):
    from bitrix_app.sandbox.demo_data import create_demo_database
    from bitrix_app.services.messages import text

    monkeypatch.setenv("BITRIX_LANG", lang)
    portal, source_id = demo["portal"], demo["source_ids"][0]
    ok = invoke(runner, "sources", "check", source_id, "--portal", portal.domain)
    assert ok.exit_code == 0 and f"Source #{source_id}: ok. {text('CHECK_OK', lang)}" in ok.output
    portal.sources[source_id]["settings"][2]["value"] = "bad"
    refused = invoke(runner, "sources", "check", source_id, "--portal", portal.domain)
    assert refused.exit_code == 1 and f"Source #{source_id}: refused. {text('CHECK_REFUSED', lang)}" in refused.output

    create_demo_database(gateway_sqlite_dir / f"cli-check-{lang}.db")
    added = invoke(runner, "databases", "add", json.dumps({"title": "Gone", "kind": "sqlite",
                                                           "database": f"cli-check-{lang}.db"}),
                   "--portal", portal.domain, "--json")
    (gateway_sqlite_dir / f"cli-check-{lang}.db").unlink()
    gone = invoke(runner, "sources", "check", json.loads(added.output)["sourceId"], "--portal", portal.domain)
    assert gone.exit_code == 1 and ": error_status, HTTP " in gone.output
    assert text("CHECK_ERROR_STATUS", lang).split("{status}")[0] in gone.output
    assert text("CHECK_OK", "ru") != text("CHECK_OK", "en")


# --- operators: error codes in text, real changes, filters, partial plans, configuration errors -------

def test_text_errors_carry_the_bitrix24_code_like_json(runner, demo):
    result = invoke(runner, "connectors", "get", 999, "--portal", "alpha.bitrix24.test")
    assert result.exit_code == 1
    assert result.output.startswith("Error (CONNECTOR_NOT_FOUND): ")
    assert "no such connector" in result.output


def test_source_update_reports_only_what_really_changed(runner, fake, demo):
    source_id = demo["source_ids"][0]  # port 5432, token demo-token-1
    same_port = invoke(runner, "sources", "update", source_id,
                       '{"description": "Nightly", "settings": {"port": 5432, "token": "demo-token-1"}}',
                       "--portal", "alpha.bitrix24.test", "--json")
    assert same_port.exit_code == 0, same_port.output
    # the unchanged port is left out; a sent secret always counts, so the report never confirms a guess
    assert json.loads(same_port.output) == {"id": source_id, "changed": ["description", "settings.token"]}

    new_token = invoke(runner, "sources", "update", source_id, '{"settings": {"token": "rotated-token"}}',
                       "--portal", "alpha.bitrix24.test")
    assert new_token.exit_code == 0, new_token.output
    assert new_token.output.strip() == f"Source #{source_id} updated: settings.token."
    assert "rotated-token" not in new_token.output

    again = invoke(runner, "sources", "update", source_id, '{"settings": {"port": 5432}}',
                   "--portal", "alpha.bitrix24.test")
    assert again.exit_code == 0 and "nothing changed" in again.output, again.output
    guess = invoke(runner, "sources", "update", source_id, '{"settings": {"token": "rotated-token"}}',
                   "--portal", "alpha.bitrix24.test")
    assert guess.output.strip() == new_token.output.strip()  # right or wrong, the same answer


def test_sources_list_by_connector(runner, fake, demo):
    other = fake.seed_connector(demo["portal"], {
        "title": "Other", "urlCheck": f"{fake.url}/_demo_connector/check",
        "urlTableList": f"{fake.url}/_demo_connector/table_list",
        "urlTableDescription": f"{fake.url}/_demo_connector/table_description",
        "urlData": f"{fake.url}/_demo_connector/data", "settings": [{"name": "Host", "code": "host", "type": "STRING"}]})
    fake.seed_source(demo["portal"], {"title": "Elsewhere", "connectorId": other, "settings": {"host": "x.test"}})

    mine = invoke(runner, "sources", "list", "--connector", demo["connector_id"], "--portal", "alpha.bitrix24.test",
                  "--json")
    theirs = invoke(runner, "sources", "list", "--connector", other, "--portal", "alpha.bitrix24.test")
    nothing = invoke(runner, "sources", "list", "--connector", 999, "--portal", "alpha.bitrix24.test")

    assert mine.exit_code == 0, mine.output
    assert sorted(item["id"] for item in json.loads(mine.output)) == sorted(demo["source_ids"])
    assert "Elsewhere" in theirs.output and "Main warehouse" not in theirs.output
    assert nothing.exit_code == 0 and nothing.output.strip() == "No sources."
    assert invoke(runner, "sources", "list", "--connector", "abc", "--portal", "alpha.bitrix24.test").exit_code == 2


def test_a_plan_that_partly_lands_says_so_and_wraps_the_reason_below_the_table(runner, fake, demo, tmp_path):
    good, bad = demo["source_ids"]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"sources": [
        {"match": {"id": bad}, "fields": {"settings": {"token": "bad"}}},  # the connector's check refuses it
        {"match": {"id": good}, "fields": {"description": "Still lands"}},
    ]}))

    result = invoke(runner, "plan", "apply", plan)

    assert result.exit_code == 1
    lines = result.output.splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("PORTAL"))
    assert "REASON" not in lines[header]
    row = lines[header + 1]
    assert row.startswith("alpha.bitrix24.test") and "1 changed, 1 failed" in row
    assert "check URL" not in row  # the reason is not squeezed into the table
    reason = lines[lines.index("", header) + 1:]
    assert reason[0].startswith("alpha.bitrix24.test: source #")
    assert all(len(line) <= 100 for line in lines)
    assert "check URL" in " ".join(line.strip() for line in reason)
    assert "failed (SOURCE_UPDATE_CONNECTION_ERROR)" in result.output  # the diff names the code
    assert lines[-1] == "0 changed, 1 partly changed, 0 unchanged, 0 failed"


def test_a_wrong_key_at_decrypt_time_is_one_line_with_what_to_do(runner, bitrix, installed_portal, monkeypatch):
    monkeypatch.setattr(bitrix.tokens, "cipher", TokenCipher([TokenCipher.generate_key()]))
    bitrix.tokens.forget(installed_portal.member_id)  # as in a new process: nothing decrypted yet

    text = invoke(runner, "connectors", "list", "--portal", installed_portal.domain)
    as_json = invoke(runner, "connectors", "list", "--portal", installed_portal.domain, "--json")

    assert text.exit_code == 1 and isinstance(text.exception, SystemExit)
    assert len(text.output.strip().splitlines()) == 1, text.output
    assert text.output.startswith("Error (TOKEN_DECRYPTION_FAILED): ")
    assert "TOKEN_ENCRYPTION_KEYS" in text.output and "rotate-keys" in text.output
    assert as_json.exit_code == 1 and json.loads(as_json.output)["error"] == "TOKEN_DECRYPTION_FAILED"


def cli_subprocess(*args, **env):
    import os
    import secrets
    import subprocess
    import sys
    from pathlib import Path

    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "SECRET_KEY": secrets.token_urlsafe(32),
            "BITRIX_CLIENT_ID": "id", "BITRIX_CLIENT_SECRET": "secret", "APP_PUBLIC_URL": "https://app.example.com",
            "TOKEN_ENCRYPTION_KEYS": TokenCipher.generate_key(), "ALLOW_SQLITE": "1"}
    flask = str(Path(sys.executable).with_name("flask"))
    return subprocess.run([flask, "--app", "app", *args], cwd=Path(__file__).resolve().parent.parent,
                          env={**base, **env}, capture_output=True, text=True, timeout=60)


def test_a_malformed_encryption_key_is_a_configuration_line_not_a_traceback(tmp_path):
    result = cli_subprocess("portals", "list", TOKEN_ENCRYPTION_KEYS="not-a-key",
                            DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("Configuration error: TOKEN_ENCRYPTION_KEYS holds a value that is not a Fernet key")
    assert "Fernet.generate_key()" in line
    listing = cli_subprocess("--help", TOKEN_ENCRYPTION_KEYS="not-a-key")
    assert listing.returncode == 0 and "\n  portals " in listing.stdout


def test_a_database_without_the_schema_is_one_line_naming_db_upgrade(tmp_path):
    result = cli_subprocess("portals", "list", DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("Error (DATABASE_UNAVAILABLE): ") and "db upgrade" in line and "no such table" in line
