"""Typed biconnector helpers, against the fake portal through the stored token."""
import pytest

from bitrix_app.services.biconnector import normalize_source
from bitrix_app.services.errors import BitrixError
from tests.conftest import not_gateway


@pytest.fixture
def demo(fake, installed_portal, bitrix):
    ids = fake.seed_demo(installed_portal)
    return ids, bitrix.biconnector(installed_portal.member_id)


def test_connectors_and_connector_shapes(demo):
    ids, biconnector = demo
    [connector] = not_gateway(biconnector.connectors())
    assert connector["id"] == ids["connector_id"]
    assert connector["title"] == "Demo warehouse"
    assert [setting["code"] for setting in connector["settings"]] == ["host", "port", "token"]
    assert biconnector.connector(ids["connector_id"])["urlCheck"].endswith("/_demo_connector/check")


def test_source_get_is_flattened_like_list_items(demo):
    ids, biconnector = demo
    listed = {source["id"]: source for source in biconnector.sources()}
    single = biconnector.source(ids["source_ids"][0])
    assert single["title"] == "Main warehouse" == listed[single["id"]]["title"]
    assert single["connectorId"] == ids["connector_id"]
    assert {s["code"]: s["value"] for s in single["settings"]}["host"] == "wh1.demo.test"
    assert all("id" not in setting for setting in single["settings"])


def test_updates_land_and_settings_merge_by_key(fake, installed_portal, demo):
    ids, biconnector = demo
    source_id = ids["source_ids"][0]
    assert biconnector.update_source(source_id, {"title": "Main", "settings": {"host": "db2.demo.test"}}) is True
    settings = {s["code"]: s["value"] for s in biconnector.source(source_id)["settings"]}
    assert settings == {"host": "db2.demo.test", "port": "5432", "token": "demo-token-1"}

    new_settings = [{"name": "Host", "code": "host", "type": "STRING"}]
    assert biconnector.update_connector(ids["connector_id"], {"settings": new_settings}) is True
    assert installed_portal.connectors[ids["connector_id"]]["settings"] == new_settings


def test_failed_update_raises(demo):
    _, biconnector = demo
    with pytest.raises(BitrixError) as excinfo:
        biconnector.update_connector(4242, {"title": "x"})
    assert excinfo.value.code == "CONNECTOR_NOT_FOUND"


def test_fields_schemas(demo):
    _, biconnector = demo
    assert "urlCheck" in {field["title"] for field in biconnector.connector_fields()}
    assert "connectorId" in {field["title"] for field in biconnector.source_fields()}


def test_normalize_source_accepts_string_ids():
    item = normalize_source({"connection": {"id": "11", "title": "T"}, "connectorId": "4",
                             "settings": [{"code": "a", "value": "1", "id": "9"}]})
    assert item == {"id": 11, "title": "T", "connectorId": 4, "settings": [{"code": "a", "value": "1"}]}
