"""Registering the app's own connectors: at install, idempotent, re-registered after deletion,
moved to a new APP_PUBLIC_URL, shaped by what the portal's connector.fields knows."""
from __future__ import annotations

from dataclasses import replace

from bitrix_app.gateway.connectors import set_portal_lang, sync_connectors
from bitrix_app.models import GatewayConnector
from tests.conftest import not_gateway


def ours(portal) -> list[dict]:
    return [item for item in portal.connectors.values() if "/gateway/" in item["urlCheck"]]


def settings_of(app):
    return app.extensions["gateway"].settings


def test_install_registers_one_connector_per_kind(installed_portal, app):
    connectors = ours(installed_portal)
    assert sorted(item["urlCheck"].rsplit("kind=", 1)[1] for item in connectors) == ["mysql", "postgresql", "sqlite"]
    assert {item["sourceCode"] for item in connectors} == {"pgsql", "mysql", None}
    assert all(item["supportMapping"] is True for item in connectors)
    for item in connectors:
        assert [setting["code"] for setting in item["settings"]] == ["source_key", "secret"]
        assert installed_portal.member_id not in item["urlCheck"]
        assert item["logo"].startswith("data:image/svg+xml;base64,")
    with app.extensions["bitrix"].session_factory() as session:
        assert session.query(GatewayConnector).count() == 3


def test_a_second_sync_changes_nothing(installed_portal, app, bitrix, fake):
    before = {key: dict(value) for key, value in installed_portal.connectors.items()}
    outcomes = sync_connectors(bitrix, settings_of(app), installed_portal.member_id)
    assert [outcome.action for outcome in outcomes] == ["unchanged"] * 3
    assert installed_portal.connectors == before
    assert fake.count_requests(installed_portal, "biconnector.connector.update") == 0
    assert fake.count_requests(installed_portal, "biconnector.connector.add") == 3


def test_a_deleted_connector_is_registered_again(installed_portal, app, bitrix):
    victim = ours(installed_portal)[0]
    del installed_portal.connectors[victim["id"]]
    outcomes = sync_connectors(bitrix, settings_of(app), installed_portal.member_id)
    assert sorted(outcome.action for outcome in outcomes) == ["added", "unchanged", "unchanged"]
    assert len(ours(installed_portal)) == 3


def test_changed_fields_are_updated_and_foreign_connectors_left_alone(demo_portal, app, bitrix):
    victim = ours(demo_portal)[0]
    victim["title"] = "Renamed by an administrator"
    victim["settings"] = []
    outcomes = sync_connectors(bitrix, settings_of(app), demo_portal.member_id)
    updated = [outcome for outcome in outcomes if outcome.action == "updated"]
    assert [(outcome.connector_id, outcome.changed) for outcome in updated] == [(victim["id"], ["settings", "title"])]
    assert [item["title"] for item in not_gateway(list(demo_portal.connectors.values()))] == ["Demo warehouse"]


def test_a_new_public_url_moves_every_connector(installed_portal, app, bitrix):
    settings = replace(settings_of(app), public_url="https://bi.example.test")
    dry = sync_connectors(bitrix, settings, installed_portal.member_id, dry_run=True)
    assert [outcome.action for outcome in dry] == ["would-update"] * 3
    assert all(item["urlCheck"].startswith(app.live_url) for item in ours(installed_portal))
    sync_connectors(bitrix, settings, installed_portal.member_id)
    assert all(item[name].startswith("https://bi.example.test/gateway/")
               for item in ours(installed_portal) for name in ("urlCheck", "urlData", "urlTableList",
                                                                "urlTableDescription"))


def test_older_portals_get_no_unknown_fields(fake, portal):
    fake.config.source_code = False
    fake.config.support_mapping = False
    assert fake.install(portal).status_code == 200
    connectors = ours(portal)
    assert len(connectors) == 3
    assert all(item.get("sourceCode") is None and item.get("supportMapping") is False for item in connectors)


def test_the_portal_language_titles_the_connectors(installed_portal, app, bitrix):
    set_portal_lang(bitrix, installed_portal.member_id, "ru")
    sync_connectors(bitrix, settings_of(app), installed_portal.member_id)
    titles = sorted(item["title"] for item in ours(installed_portal))
    assert titles == ["MySQL / MariaDB (защищённый шлюз)", "PostgreSQL (защищённый шлюз)", "SQLite (защищённый шлюз)"]
    assert all(item["settings"][0]["name"].startswith("Ключ источника") for item in ours(installed_portal))
