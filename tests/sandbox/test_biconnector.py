"""biconnector.connector.* and biconnector.source.*: shapes, validation order and messages,
ownership, rights, paging, and the urlCheck call made before a source is saved."""
from __future__ import annotations

import pytest


def nested_error(response) -> dict:
    """biconnector errors: HTTP 200, a success envelope, the error inside result."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert "time" in body and "error" not in body
    return body["result"]["error"]


def connector_fields(receiver, **overrides) -> dict:
    fields = {
        "title": "Warehouse", "logo": "data:image/svg+xml;base64,AA==",
        "urlCheck": f"{receiver.url}/check", "urlData": f"{receiver.url}/data",
        "urlTableList": f"{receiver.url}/tables", "urlTableDescription": f"{receiver.url}/describe",
        "settings": [{"name": "Login", "code": "login", "type": "STRING"},
                     {"name": "Port", "code": "port", "type": "INT"}],
    }
    fields.update(overrides)
    return fields


@pytest.fixture
def connector_id(call, receiver) -> int:
    return call("biconnector.connector.add", {"fields": connector_fields(receiver)}).json()["result"]["id"]


@pytest.fixture
def source_id(call, connector_id, receiver) -> int:
    response = call("biconnector.source.add", {"fields": {
        "title": "Main", "connectorId": connector_id, "settings": {"login": " admin ", "port": 5432}}})
    receiver.reset()
    return response.json()["result"]["id"]


# --- connectors ---------------------------------------------------------------------------

def test_connector_add_and_get_shape(b24, call, receiver):
    added = call("biconnector.connector.add", {"fields": connector_fields(receiver, sort="200", supportMapping=True)})

    item = call("biconnector.connector.get", {"id": str(added.json()["result"]["id"])}).json()["result"]["item"]

    assert added.json()["result"] == {"id": 1}
    assert list(item) == ["id", "title", "dateCreate", "logo", "description", "sort", "urlCheck", "settings",
                          "urlData", "urlTableList", "urlTableDescription", "supportMapping", "sourceCode"]
    assert (item["id"], item["sort"], item["supportMapping"]) == (1, 200, True)
    assert len(item["dateCreate"]) == 19 and item["dateCreate"][10] == " "
    assert receiver.requests == []  # connector calls never reach the connector


@pytest.mark.parametrize("params, code, message", [
    ({}, "VALIDATION_FIELDS_NOT_PROVIDED", "Fields not provided."),
    ({"fields": {}}, "VALIDATION_FIELDS_NOT_PROVIDED", "Fields not provided."),
    ({"fields": "title=x"}, "VALIDATION_FIELDS_NOT_PROVIDED", "Fields not provided."),
    ({"fields": {"title": "x", "url_check": "y", "appId": "z"}}, "VALIDATION_UNKNOWN_PARAMETERS",
     "Unknown parameters: url_check, appId"),
    ({"fields": {"title": "x"}}, "VALIDATION_REQUIRED_FIELD_MISSING", 'Field "logo" is required.'),
])
def test_connector_add_needs_known_and_required_fields(call, params, code, message):
    assert nested_error(call("biconnector.connector.add", params)) == {"error": code, "error_description": message}


@pytest.mark.parametrize("overrides, code, message", [
    ({"id": 5}, "VALIDATION_READ_ONLY_FIELD", 'Field "id" is read only.'),
    ({"title": 5}, "VALIDATION_INVALID_FIELD_TYPE", 'Field "title" must be of type string.'),
    ({"sort": "abc"}, "VALIDATION_INVALID_FIELD_TYPE", 'Field "sort" must be of type integer.'),
    ({"supportMapping": "1"}, "VALIDATION_INVALID_FIELD_TYPE", 'Field "supportMapping" must be of type boolean.'),
    ({"settings": [{"name": "A", "code": "a"}]}, "VALIDATION_SETTINGS_MISSING_REQUIRED_FIELDS",
     'Settings must include "type", "name" and "code" fields.'),
    ({"settings": [{"name": "A" * 513, "code": "a", "type": "STRING"}]}, "VALIDATION_SETTINGS_NAME_TOO_LONG",
     'Parameter "name" must be less than 512 characters.'),
    ({"settings": [{"name": "A", "code": "a" * 513, "type": "STRING"}]}, "VALIDATION_SETTINGS_CODE_TOO_LONG",
     'Parameter "code" must be less than 512 characters.'),
    ({"settings": [{"name": "A", "code": "a", "type": "string"}]}, "VALIDATION_SETTINGS_INVALID_TYPE",
     'Parameter "type" is not correct.'),
])
def test_connector_add_field_checks(call, receiver, overrides, code, message):
    response = call("biconnector.connector.add", {"fields": connector_fields(receiver, **overrides)})

    assert nested_error(response) == {"error": code, "error_description": message}


def test_unknown_parameters_win_over_field_errors(call):
    error = nested_error(call("biconnector.connector.add", {"fields": {"id": 1, "bogus": 1}}))

    assert error["error"] == "VALIDATION_UNKNOWN_PARAMETERS"


def test_settings_keys_are_case_folded_like_the_module(call, receiver):
    fields = connector_fields(receiver, settings=[{"Name": "Host", "Code": "host", "Type": "STRING"}])

    added = call("biconnector.connector.add", {"fields": fields}).json()["result"]

    assert "id" in added


def test_version_switches(b24, call, receiver):
    b24.config.support_mapping = False
    b24.config.source_code = False

    error = nested_error(call("biconnector.connector.add", {"fields": connector_fields(receiver, supportMapping=False)}))
    schema = call("biconnector.connector.fields").json()["result"]["fields"]

    assert error == {"error": "VALIDATION_UNKNOWN_PARAMETERS", "error_description": "Unknown parameters: supportMapping"}
    assert [field["title"] for field in schema][-2:] == ["settings", "dateCreate"]


def test_connector_update_is_partial_but_replaces_settings_wholesale(call, connector_id):
    new_settings = [{"name": "Token", "code": "token", "type": "STRING"}]

    updated = call("biconnector.connector.update", {"id": connector_id, "fields": {"settings": new_settings,
                                                                                   "sort": 7}})
    item = call("biconnector.connector.get", {"id": connector_id}).json()["result"]["item"]

    assert updated.json()["result"] is True
    assert item["settings"] == new_settings and item["sort"] == 7 and item["title"] == "Warehouse"


@pytest.mark.parametrize("params, code, message", [
    ({"fields": {"title": "x"}}, "VALIDATION_ID_NOT_PROVIDED", "ID is missing."),
    ({"id": "abc", "fields": {"title": "x"}}, "VALIDATION_INVALID_ID_FORMAT", "ID has to be a positive integer."),
    ({"id": 0, "fields": {"title": "x"}}, "VALIDATION_INVALID_ID_FORMAT", "ID has to be a positive integer."),
    ({"id": 1}, "VALIDATION_FIELDS_NOT_PROVIDED", "Fields not provided."),
    ({"id": 1, "fields": {"dateCreate": "2024-01-01"}}, "VALIDATION_READ_ONLY_FIELD", 'Field "dateCreate" is read only.'),
    ({"id": 999, "fields": {"title": "x"}}, "CONNECTOR_NOT_FOUND", "Connector was not found."),
    ({"id": 1, "fields": {"settings": [{"name": "a", "code": "b", "type": "INTEGER"}]}},
     "VALIDATION_SETTINGS_INVALID_TYPE", 'Parameter "type" is not correct.'),
])
def test_connector_update_validation(call, connector_id, params, code, message):
    assert nested_error(call("biconnector.connector.update", params)) == {"error": code, "error_description": message}


def test_objects_of_another_app_are_not_found(b24, portal, call, connector_id, source_id):
    b24.add_app("app.other", "other-secret")
    other = b24.issue_tokens(portal, client_id="app.other")["access_token"]

    assert nested_error(call("biconnector.connector.get", {"id": connector_id}, auth=other))["error"] == "CONNECTOR_NOT_FOUND"
    assert nested_error(call("biconnector.source.get", {"id": source_id}, auth=other))["error"] == "SOURCE_NOT_FOUND"
    assert call("biconnector.connector.list", auth=other).json()["result"] == []
    assert call("biconnector.source.list", auth=other).json()["result"] == []
    foreign_add = call("biconnector.source.add", {"fields": {"title": "x", "connectorId": connector_id,
                                                            "settings": {}}}, auth=other)
    assert nested_error(foreign_add)["error"] == "CONNECTOR_NOT_FOUND"


def test_seeded_connector_of_another_client_is_invisible(b24, portal, call):
    foreign_id = b24.seed_connector(portal, {"title": "Theirs", "settings": []}, client_id="app.other")

    assert nested_error(call("biconnector.connector.update", {"id": foreign_id, "fields": {"title": "x"}})) == {
        "error": "CONNECTOR_NOT_FOUND", "error_description": "Connector was not found."}


def test_users_without_bi_rights_are_denied_inside_result(b24, portal, call, connector_id):
    reader = portal.add_user(name="Olga Reader", admin=False, bi_access=False)
    token = b24.issue_tokens(portal, reader)["access_token"]

    for method, params in [("biconnector.connector.get", {"id": connector_id}), ("biconnector.source.list", {}),
                           ("biconnector.connector.fields", {})]:
        assert nested_error(call(method, params, auth=token)) == {"error": "ACCESS_DENIED",
                                                                  "error_description": "Access denied."}


def test_connector_delete_rules(call, connector_id, source_id):
    restricted = nested_error(call("biconnector.connector.delete", {"id": connector_id}))
    call("biconnector.source.delete", {"id": source_id})

    assert restricted == {"error": "CONNECTOR_DELETE_RESTRICTED", "error_description":
                          "Connector cannot be removed. Remove the connections related to the connector first."}
    assert call("biconnector.connector.delete", {"id": connector_id}).json()["result"] is True
    assert nested_error(call("biconnector.connector.get", {"id": connector_id}))["error"] == "CONNECTOR_NOT_FOUND"


def test_fields_methods_describe_the_schema(call):
    connector = call("biconnector.connector.fields").json()["result"]["fields"]
    source = call("biconnector.source.fields").json()["result"]["fields"]

    assert connector[0] == {"title": "id", "type": "integer", "isRequired": True, "isReadOnly": True,
                            "isImmutable": False, "isMultiple": False}
    assert [field["title"] for field in source] == ["id", "title", "type", "code", "description", "active",
                                                    "dateCreate", "dateUpdate", "createdById", "updatedById",
                                                    "connectorId", "settings"]


# --- lists ----------------------------------------------------------------------------------

def test_list_pages_by_50_and_ignores_start(b24, portal, call, receiver):
    for number in range(120):
        b24.seed_connector(portal, {"title": f"C{number:03}", "settings": []})

    ordered = {"order": {"id": "ASC"}}
    pages = [call("biconnector.connector.list", {**ordered, "page": page}).json() for page in (1, 2, 3, 4)]
    with_start = call("biconnector.connector.list", {**ordered, "start": 50}).json()

    assert [len(page["result"]) for page in pages] == [50, 50, 20, 0]
    assert "total" not in pages[0] and "next" not in pages[0]
    assert pages[1]["result"][0]["title"] == "C050"
    assert with_start["result"][0]["title"] == "C000"


def test_lists_without_an_order_come_in_no_particular_order(b24, portal, call):
    for number in range(120):
        b24.seed_connector(portal, {"title": f"C{number:03}", "settings": []})
    orders = {tuple(item["id"] for item in call("biconnector.connector.list").json()["result"]) for _ in range(5)}
    assert len(orders) > 1  # 50 of 120 objects in 5 draws: the same page twice is all but impossible


def test_list_select_filter_and_order(b24, portal, call):
    for title, sort in (("Alpha", 3), ("Beta", 1), ("Gamma", 2)):
        b24.seed_connector(portal, {"title": title, "sort": sort, "settings": []})

    ordered = call("biconnector.connector.list", {"order": {"sort": "desc"}, "select": ["title"]}).json()["result"]
    filtered = call("biconnector.connector.list", {"filter": {">=sort": 2, "%title": "amm"}}).json()["result"]
    either = call("biconnector.connector.list", {"filter": {"logic": "OR", "=title": "Alpha", "@id": [2]}}).json()["result"]

    assert ordered == [{"id": 1, "title": "Alpha"}, {"id": 3, "title": "Gamma"}, {"id": 2, "title": "Beta"}]
    assert [item["title"] for item in filtered] == ["Gamma"]
    assert sorted(item["title"] for item in either) == ["Alpha", "Beta"]


@pytest.mark.parametrize("params, code, message", [
    ({"select": "title"}, "VALIDATION_SELECT_TYPE", 'Parameter "select" must be array.'),
    ({"select": ["appId"]}, "VALIDATION_FIELD_NOT_ALLOWED_IN_SELECT", 'Field "appId" is not allowed in the "select".'),
    ({"filter": "x"}, "VALIDATION_FILTER_TYPE", 'Parameter "filter" must be array.'),
    ({"filter": {"logic": "XOR"}}, "VALIDATION_INVALID_FILTER_LOGIC", 'Field "logic" must be either "AND" or "OR".'),
    ({"filter": {">=bogus": 1}}, "VALIDATION_FIELD_NOT_ALLOWED_IN_FILTER", 'Field "bogus" is not allowed in the "filter".'),
    ({"filter": {"@title": ["a", "b"]}}, "VALIDATION_FIELD_NOT_ALLOWED_IN_FILTER", 'Field "0" is not allowed in the "filter".'),
    ({"order": "title"}, "VALIDATION_ORDER_TYPE", 'Parameter "order" must be array.'),
    ({"order": {"appId": "ASC"}}, "VALIDATION_FIELD_NOT_ALLOWED_IN_ORDER", 'Field "appId" is not allowed in the "order".'),
])
def test_list_validation(call, params, code, message):
    assert nested_error(call("biconnector.connector.list", params)) == {"error": code, "error_description": message}


def test_bad_order_direction_is_a_top_level_400(call, connector_id):
    response = call("biconnector.connector.list", {"order": {"title": "upwards"}})

    assert response.status_code == 400
    assert response.json() == {"error": "ERROR_ARGUMENT", "error_description": 'Invalid order "UPWARDS"'}


# --- sources --------------------------------------------------------------------------------

def test_source_add_calls_url_check_first(b24, call, connector_id, receiver):
    response = call("biconnector.source.add", {"fields": {
        "title": "Main", "connectorId": str(connector_id), "settings": {"login": " admin ", "port": 5432, "extra": "x"},
        "description": "first"}})

    checks = receiver.to("/check")
    assert response.json()["result"] == {"id": 1}
    assert len(checks) == 1
    assert checks[0]["form"] == {"connection[login]": " admin ", "connection[port]": "5432", "connection[extra]": "x"}
    assert checks[0]["content_type"] == "application/x-www-form-urlencoded"
    assert b24.outbound_calls[-1]["kind"] == "url_check" and b24.outbound_calls[-1]["ok"] is True
    stored = b24.portal("alpha.bitrix24.test").sources[1]
    assert [(item["code"], item["value"]) for item in stored["settings"]] == [("login", "admin"), ("port", "5432")]


@pytest.mark.parametrize("answer", [(500, "OK"), (200, ""), (200, "0"), (404, "nope")])
def test_source_add_fails_when_url_check_fails(b24, portal, call, connector_id, receiver, answer):
    receiver.answers["/check"] = answer

    error = nested_error(call("biconnector.source.add", {"fields": {"title": "x", "connectorId": connector_id,
                                                                   "settings": {"login": "a"}}}))

    assert error == {"error": "SOURCE_CREATE_CONNECTION_ERROR", "error_description": "Cannot create connection."}
    assert portal.sources == {}


def test_private_addresses_can_be_refused_like_the_cloud(b24, portal, call, connector_id, receiver):
    b24.config.allow_local_connections = False

    error = nested_error(call("biconnector.source.add", {"fields": {"title": "x", "connectorId": connector_id,
                                                                   "settings": {}}}))

    assert error["error"] == "SOURCE_CREATE_CONNECTION_ERROR" and receiver.requests == []


def test_source_update_checks_title_after_url_check(call, source_id, receiver):
    error = nested_error(call("biconnector.source.update", {"id": source_id, "fields": {"description": "d"}}))

    assert error == {"error": 0, "error_description": "All the fields are required."}
    assert len(receiver.to("/check")) == 1


def test_source_update_merges_settings_and_sends_the_merged_values(b24, portal, call, source_id, receiver):
    response = call("biconnector.source.update", {"id": source_id, "fields": {
        "title": "Renamed", "active": False, "settings": {"port": " 6543 ", "unknown": "u"}}})

    assert response.json()["result"] is True
    assert receiver.to("/check")[0]["form"] == {"connection[login]": "admin", "connection[port]": " 6543 ",
                                               "connection[unknown]": "u"}
    item = call("biconnector.source.get", {"id": source_id}).json()["result"]["item"]
    assert item["connection"]["title"] == "Renamed" and item["connection"]["active"] is True  # active ignored
    assert [(s["code"], s["value"]) for s in item["settings"]] == [("login", "admin"), ("port", "6543")]


def test_source_update_without_settings_still_calls_url_check(call, source_id, receiver):
    call("biconnector.source.update", {"id": source_id, "fields": {"title": "Same"}})

    assert receiver.to("/check")[0]["form"] == {"connection[login]": "admin", "connection[port]": "5432"}


def test_source_update_failure_keeps_the_stored_values(portal, call, source_id, receiver):
    receiver.answers["/check"] = (500, "")

    error = nested_error(call("biconnector.source.update", {"id": source_id, "fields": {
        "title": "New", "settings": {"login": "other"}}}))

    assert error == {"error": "SOURCE_UPDATE_CONNECTION_ERROR", "error_description": "Cannot update connection."}
    assert portal.sources[source_id]["title"] == "Main"
    assert portal.sources[source_id]["settings"][0]["value"] == "admin"


def test_source_update_sets_the_updater_and_date(b24, portal, call, source_id):
    editor = portal.add_user(name="Petr Editor", admin=False, bi_access=True)
    b24.clock.advance(120)

    call("biconnector.source.update", {"id": source_id, "fields": {"title": "Edited"}},
         auth=b24.issue_tokens(portal, editor)["access_token"])

    stored = portal.sources[source_id]
    assert stored["updatedById"] == editor.id and stored["createdById"] == 1
    assert stored["dateUpdate"] > stored["dateCreate"]


@pytest.mark.parametrize("fields, code, message", [
    ({"title": "x", "connectorId": 2}, "VALIDATION_IMMUTABLE_FIELD", 'Field "connectorId" is immutable.'),
    ({"title": "x", "code": "rest_9"}, "VALIDATION_READ_ONLY_FIELD", 'Field "code" is read only.'),
    ({"title": "x", "active": "N"}, "VALIDATION_INVALID_FIELD_TYPE", 'Field "active" must be of type boolean.'),
    ({"title": "x", "settings": "login=a"}, "VALIDATION_INVALID_FIELD_TYPE", 'Field "settings" must be of type array.'),
])
def test_source_update_validation(call, source_id, receiver, fields, code, message):
    error = nested_error(call("biconnector.source.update", {"id": source_id, "fields": fields}))

    assert error == {"error": code, "error_description": message}
    assert receiver.requests == []


def test_source_connector_dropping_a_code_removes_its_value_on_next_save(call, connector_id, source_id):
    call("biconnector.connector.update", {"id": connector_id, "fields": {"settings": [
        {"name": "Login", "code": "login", "type": "STRING"}]}})

    before = call("biconnector.source.get", {"id": source_id}).json()["result"]["item"]["settings"]
    call("biconnector.source.update", {"id": source_id, "fields": {"title": "Main"}})
    after = call("biconnector.source.get", {"id": source_id}).json()["result"]["item"]["settings"]

    assert [s["code"] for s in before] == ["login", "port"]
    assert [s["code"] for s in after] == ["login"]


def test_source_read_shapes(call, connector_id, source_id):
    item = call("biconnector.source.get", {"id": source_id}).json()["result"]["item"]
    listed = call("biconnector.source.list").json()["result"]
    only_settings = call("biconnector.source.list", {"select": ["settings"]}).json()["result"]

    assert list(item) == ["connection", "connectorId", "settings"]
    assert list(item["connection"]) == ["id", "type", "code", "title", "description", "active", "dateCreate",
                                        "dateUpdate", "createdById", "updatedById"]
    assert item["connection"]["code"] == f"rest_{connector_id}" and item["connection"]["type"] == "rest"
    assert item["settings"][0] == {"code": "login", "name": "Login", "type": "STRING", "value": "admin",
                                   "id": item["settings"][0]["id"]}
    assert list(listed[0]) == ["id", "title", "type", "code", "description", "active", "dateCreate", "dateUpdate",
                               "createdById", "updatedById", "connectorId", "settings"]
    assert listed[0]["settings"][0] == {"code": "login", "name": "Login", "type": "STRING", "value": "admin"}
    assert only_settings == [{"settings": listed[0]["settings"]}]


def test_source_list_filters_ignore_settings(b24, portal, call, connector_id, source_id):
    b24.seed_source(portal, {"title": "SQL backup", "connectorId": connector_id, "settings": {"login": "b"}})

    found = call("biconnector.source.list", {"filter": {"%=title": "SQL%", "settings": "x"},
                                             "order": {"settings": "ASC"}}).json()["result"]

    assert [item["title"] for item in found] == ["SQL backup"]


def test_source_delete_rules(b24, portal, call, source_id):
    b24.seed_table(portal, source_id)

    blocked = nested_error(call("biconnector.source.delete", {"id": source_id}))
    portal.tables.clear()

    assert blocked == {"error": "BX_ERROR", "error_description": "Cannot delete source. Delete all related datasets first."}
    assert call("biconnector.source.delete", {"id": source_id}).json()["result"] is True
    assert nested_error(call("biconnector.source.delete", {"id": source_id}))["error"] == "SOURCE_NOT_FOUND"


def test_url_check_may_call_back_into_the_fake_while_it_waits(b24, portal, call, source_id, token, receiver):
    """The fake is threaded: our urlCheck handler can use the REST API during source.update."""
    seen = {}
    receiver.hooks["/check"] = lambda entry: seen.update(
        profile=call("profile").json()["result"]["ID"])

    response = call("biconnector.source.update", {"id": source_id, "fields": {"title": "Main"}})

    assert response.json()["result"] is True and seen == {"profile": "1"}


# --- the 60 s cloud limit on source.add / source.update (reference 6.3, 8.2) -------------------

def test_a_slow_url_check_shows_in_the_time_block(b24, call, source_id):
    b24.config.url_check_delay = 12.5

    body = call("biconnector.source.update", {"id": source_id, "fields": {"title": "Slow"}}).json()

    assert body["result"] is True
    assert 12.5 <= body["time"]["duration"] < 14


def test_a_batch_over_the_request_time_limit_stops_and_answers_504(b24, portal, call, source_id):
    b24.config.url_check_delay = 25.0
    b24.config.rest_time_limit = 60.0
    command = f"biconnector.source.update?id={source_id}&fields[title]=Title%20"

    response = call("batch", {"cmd": {f"c{n}": f"{command}{n}" for n in range(5)}})

    assert response.status_code == 504 and "text/html" in response.headers["Content-Type"]
    ran = [entry for entry in b24.requests_log if entry["in_batch"]]
    assert len(ran) == 3  # 0, 25, 50 s: the fourth command found the time used up
    assert portal.sources[source_id]["title"] == "Title 2"


def test_a_single_call_over_the_limit_still_lands_but_gets_504(b24, portal, call, source_id):
    b24.config.url_check_delay = 61.0
    b24.config.rest_time_limit = 60.0

    response = call("biconnector.source.update", {"id": source_id, "fields": {"title": "Landed"}})

    assert response.status_code == 504
    assert portal.sources[source_id]["title"] == "Landed"
