"""The demo connector: its endpoints on the fake, and on a server of its own (as the benchmark runs it)."""
from __future__ import annotations

import threading

import pytest
import requests
from werkzeug.serving import make_server

from bitrix_app.sandbox.fake import demo_connector


@pytest.fixture(scope="module")
def own_server_url():
    server = make_server("127.0.0.1", 0, demo_connector.create_app(), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/_demo_connector"
    server.shutdown()


def test_its_own_server_answers_the_check_and_refuses_a_bad_token(own_server_url):
    assert requests.post(f"{own_server_url}/check", data={"connection[token]": "t"}, timeout=5).text == "OK"
    assert requests.post(f"{own_server_url}/check", data={"connection[token]": "bad"}, timeout=5).status_code == 403


def test_seeded_on_its_own_server_the_portal_checks_it_there(b24, portal, call, own_server_url):
    demo = b24.seed_demo(portal, own_server_url)
    connector = portal.connectors[demo["connector_id"]]
    assert connector["urlCheck"] == f"{own_server_url}/check"
    assert connector["urlData"] == f"{own_server_url}/data"

    source_id = demo["source_ids"][0]
    response = call("biconnector.source.update", {"id": source_id, "fields": {"title": "Main", "settings": {
        "host": "elsewhere.example.com"}}})

    assert response.json()["result"] is True
    check = b24.outbound_calls[-1]
    assert (check["kind"], check["url"], check["ok"]) == ("url_check", f"{own_server_url}/check", True)


def test_seeded_without_a_server_it_points_at_the_fake(b24, portal):
    demo = b24.seed_demo(portal)
    assert portal.connectors[demo["connector_id"]]["urlCheck"] == f"{b24.url}/_demo_connector/check"


def test_pages_of_many_sources_hold_each_source_once_with_its_settings(b24, portal, call):
    demo = b24.seed_demo(portal)
    ids = demo["source_ids"] + [b24.seed_source(portal, {
        "title": f"Shop {n}", "connectorId": demo["connector_id"], "settings": {"host": f"h{n}", "port": "1"}})
        for n in range(118)]

    pages = [call("biconnector.source.list", {"order": {"id": "DESC"}, "page": page}).json()["result"]
             for page in (1, 2, 3)]

    assert [len(page) for page in pages] == [50, 50, 20]
    assert [row["id"] for page in pages for row in page] == sorted(ids, reverse=True)
    shop = next(row for row in pages[0] if row["title"] == "Shop 117")
    assert shop["settings"] == [{"code": item["code"], "name": item["name"], "type": item["type"],
                                 "value": item["value"]} for item in portal.sources[shop["id"]]["settings"]]
    assert {item["code"]: item["value"] for item in shop["settings"]}["host"] == "h117"
