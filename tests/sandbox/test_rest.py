"""Portal REST transport: URL forms, parameter parsing, token placement, check order,
envelopes, the leaky bucket, injected faults and batch."""
from __future__ import annotations

import requests

TIME_KEYS = {"start", "finish", "duration", "processing", "date_start", "date_finish", "operating",
             "operating_reset_at"}


def test_success_envelope_has_the_full_time_block(call):
    response = call("user.admin")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    body = response.json()
    assert body["result"] is True and set(body["time"]) == TIME_KEYS


def test_url_forms_are_all_accepted(portal, token):
    for path in ("profile", "profile.json", "profile/", "PROFILE.json", "Profile.json/"):
        response = requests.get(f"{portal.client_endpoint}{path}", params={"auth": token}, timeout=10)
        assert response.status_code == 200, path


def test_the_token_may_travel_in_the_header_auth_or_access_token(portal, token):
    url = f"{portal.client_endpoint}profile"
    ways = [
        requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10),
        requests.get(url, params={"auth": token}, timeout=10),
        requests.post(url, json={"auth": token}, timeout=10),
        requests.post(url, data={"access_token": token}, timeout=10),
        requests.post(url, data=f"auth={token}", headers={"Content-Type": "text/plain"}, timeout=10),
    ]
    assert [response.status_code for response in ways] == [200] * 5


def test_the_header_wins_over_the_auth_parameter(portal, token):
    response = requests.get(f"{portal.client_endpoint}profile", params={"auth": "garbage"},
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)

    assert response.status_code == 200


def test_invalid_json_body_is_ignored(portal, token):
    response = requests.post(f"{portal.client_endpoint}profile", data="{not json",
                             headers={"Content-Type": "application/json"}, timeout=10)

    assert response.status_code == 401 and response.json()["error"] == "NO_AUTH_FOUND"


def test_form_bodies_are_decoded_with_php_brackets(portal, token, call):
    form = {"auth": token, "fields[title]": "Form", "fields[logo]": "x", "fields[urlCheck]": "http://a/c",
            "fields[urlData]": "http://a/d", "fields[urlTableList]": "http://a/l",
            "fields[urlTableDescription]": "http://a/t", "fields[settings][0][name]": "Login",
            "fields[settings][0][code]": "login", "fields[settings][0][type]": "STRING"}

    added = requests.post(f"{portal.client_endpoint}biconnector.connector.add", data=form, timeout=10).json()
    stored = call("biconnector.connector.get", {"id": added["result"]["id"]}).json()

    assert stored["result"]["item"]["settings"] == [{"name": "Login", "code": "login", "type": "STRING"}]


def test_unknown_method_wins_over_a_bad_token(call):
    response = call("no.such.method", auth="garbage")

    assert response.status_code == 404
    assert response.json() == {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}


def test_auth_errors_in_check_order(b24, portal, call):
    other_portal = b24.add_portal(domain="beta.bitrix24.test")
    expiring = b24.issue_tokens(portal)["access_token"]
    b24.clock.advance(3601)

    missing = requests.post(f"{portal.client_endpoint}profile", json={}, timeout=10)
    unknown = call("profile", auth="garbage")
    wrong_portal = call("profile", auth=b24.issue_tokens(other_portal)["access_token"])
    expired = call("profile", auth=expiring)

    assert (missing.status_code, missing.json()) == (401, {"error": "NO_AUTH_FOUND",
                                                          "error_description": "Wrong authorization data"})
    assert (unknown.status_code, unknown.json()["error"]) == (401, "invalid_token")
    assert (wrong_portal.status_code, wrong_portal.json()["error"]) == (401, "invalid_token")
    assert (expired.status_code, expired.json()["error"]) == (401, "expired_token")
    assert "time" not in expired.json()
    foreign = b24.issue_tokens(other_portal)["access_token"]
    assert call("profile", auth=foreign, on=other_portal).status_code == 200  # fine on its own portal


def test_uninstalled_app_gets_application_not_found(b24, portal, call, token):
    b24.uninstall(portal)

    response = call("profile", auth=token)

    assert (response.status_code, response.json()["error"]) == (401, "APPLICATION_NOT_FOUND")


def test_scope_is_checked_after_the_token(b24, portal, call):
    narrow = b24.issue_tokens(portal, scope="user")["access_token"]

    denied = call("biconnector.connector.list", auth=narrow)
    b24.config.docs_statuses = True
    denied_docs = call("placement.get", auth=narrow)

    assert (denied.status_code, denied.json()["error"]) == (401, "insufficient_scope")
    assert denied_docs.status_code == 403
    assert call("user.current", auth=narrow).status_code == 200
    assert call("event.get", auth=narrow).status_code == 200  # global scope


def test_operation_time_limit_blocks_only_that_method(portal, call):
    portal.operation_time_limit_methods = {"biconnector.connector.list"}

    blocked = call("biconnector.connector.list")

    assert blocked.status_code == 429
    body = blocked.json()
    assert body["error"] == "OPERATION_TIME_LIMIT" and body["operating_reset_at"] > 0 and "time" not in body
    assert call("biconnector.source.list").status_code == 200


def test_leaky_bucket_answers_503_after_the_burst_and_drains_with_time(b24, portal, call):
    b24.config.rate_limit = True
    b24.config.burst = 5
    b24.clock.freeze()

    statuses = [call("profile").status_code for _ in range(6)]
    limited = call("profile")
    b24.clock.advance(1)  # drains 2 requests
    after_wait = [call("profile").status_code for _ in range(3)]

    assert statuses == [200] * 5 + [503]
    assert limited.json() == {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
    assert after_wait == [200, 200, 503]
    assert b24.count_503(portal) == 3


def test_the_limit_comes_before_everything_else(b24, portal, call):
    b24.config.rate_limit = True
    b24.config.burst = 1
    b24.clock.freeze()
    call("profile")

    assert call("no.such.method", auth="garbage").status_code == 503


def test_enterprise_portals_have_a_larger_bucket(b24, call):
    b24.config.rate_limit = True
    b24.clock.freeze()
    big = b24.add_portal(domain="corp.bitrix24.test", enterprise=True)
    token = b24.issue_tokens(big)["access_token"]

    statuses = [call("user.admin", auth=token, on=big).status_code for _ in range(60)]

    assert statuses == [200] * 60


def test_default_bucket_allows_fifty(b24, portal, call):
    b24.config.rate_limit = True
    b24.clock.freeze()

    statuses = [call("user.admin").status_code for _ in range(51)]

    assert statuses.count(200) == 50 and statuses[-1] == 503


def test_injected_faults(portal, call):
    portal.inject_503 = 1
    portal.html_5xx = 1

    html = call("profile")
    limited = call("profile")

    assert html.status_code == 500 and html.headers["Content-Type"].startswith("text/html")
    assert limited.status_code == 503 and limited.json()["error"] == "QUERY_LIMIT_EXCEEDED"
    assert call("profile").status_code == 200


def test_bitrix_json_escaping(b24, call):
    b24.config.bitrix_json_escaping = True
    connector_id = call("biconnector.connector.add", {"fields": connector_fields(title='Say "hi" <b>')}).json()

    raw = call("biconnector.connector.get", {"id": connector_id["result"]["id"]}).text

    assert '\\u0022hi\\u0022' in raw and "\\u003Cb\\u003E" in raw and "http:\\/\\/" in raw


def test_requests_are_logged(b24, portal, call):
    call("profile")
    call("nope")

    log = [(entry["method"], entry["status"], entry["error"]) for entry in b24.requests_log]

    assert log == [("profile", 200, None), ("nope", 404, "ERROR_METHOD_NOT_FOUND")]
    assert b24.count_requests(portal) == 2 and b24.count_requests(portal, "profile") == 1
    b24.clear_log()
    assert b24.requests_log == []


# --- batch ------------------------------------------------------------------------------------

def connector_fields(title: str = "Connector") -> dict:
    return {"title": title, "logo": "data:image/svg+xml;base64,AA==", "urlCheck": "http://127.0.0.1:9/check",
            "urlData": "http://127.0.0.1:9/data", "urlTableList": "http://127.0.0.1:9/list",
            "urlTableDescription": "http://127.0.0.1:9/describe", "settings": []}


def test_batch_runs_commands_and_collects_results_and_errors(call):
    response = call("batch", {"cmd": {
        "me": "user.current",
        "admin": "user.admin",
        "bad": "no.such.method",
        "bi": "biconnector.connector.get?id=999",
    }})

    assert response.status_code == 200
    result = response.json()["result"]
    assert result["result"]["me"]["ID"] == "1" and result["result"]["admin"] is True
    assert result["result_error"] == {"bad": {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}}
    # biconnector errors are successes, so they stay nested in result.result:
    assert result["result"]["bi"] == {"error": {"error": "CONNECTOR_NOT_FOUND",
                                                "error_description": "Connector was not found."}}
    assert set(result["result_time"]) == {"me", "admin", "bi"}
    assert result["result_total"] == [] and result["result_next"] == []


def test_batch_halt_stops_at_the_first_error(call):
    result = call("batch", {"halt": 1, "cmd": {"a": "user.admin", "b": "nope", "c": "profile"}}).json()["result"]

    assert list(result["result"]) == ["a"] and list(result["result_error"]) == ["b"]


def test_batch_command_list_gives_list_results_and_references_work(call):
    call("biconnector.connector.add", {"fields": connector_fields("First")})

    result = call("batch", {"cmd": ["biconnector.connector.list", "biconnector.connector.get?id=$result[0][0][id]"]}).json()

    assert result["result"]["result"][1]["item"]["title"] == "First"


def test_batch_limits_as_the_docs_describe_them(b24, call):
    b24.config.batch_errors_top_level = True
    too_long = call("batch", {"cmd": {f"c{i}": "user.admin" for i in range(51)}})
    nested = call("batch", {"cmd": {"inner": "batch?cmd[x]=user.admin"}})

    assert (too_long.status_code, too_long.json()["error"]) == (400, "ERROR_BATCH_LENGTH_EXCEEDED")
    assert (nested.status_code, nested.json()["error"]) == (405, "ERROR_BATCH_METHOD_NOT_ALLOWED")
    assert call("batch", {"cmd": {f"c{i}": "user.admin" for i in range(50)}}).status_code == 200


def test_batch_limits_per_command_like_the_module_code(b24, call):
    result = call("batch", {"cmd": {**{f"c{i}": "user.admin" for i in range(51)}, "inner": "batch"}}).json()["result"]

    assert len(result["result"]) == 50
    assert result["result_error"]["c50"]["error"] == "ERROR_BATCH_LENGTH_EXCEEDED"
    assert result["result_error"]["inner"]["error"] == "ERROR_BATCH_LENGTH_EXCEEDED"  # beyond 50 as well


def test_batch_counts_as_one_request(b24, portal, call):
    b24.config.rate_limit = True
    b24.config.burst = 2
    b24.clock.freeze()

    first = call("batch", {"cmd": {f"c{i}": "user.admin" for i in range(20)}})
    second = call("batch", {"cmd": {"a": "user.admin"}})
    third = call("user.admin")

    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 503]
    assert b24.count_requests(portal, "batch") == 2
    assert b24.count_requests(portal) == 3


def test_batch_commands_use_php_bracket_query_strings(call):
    command = ("biconnector.connector.add?fields[title]=Batch&fields[logo]=x&fields[urlCheck]=http://a/c"
               "&fields[urlData]=http://a/d&fields[urlTableList]=http://a/l&fields[urlTableDescription]=http://a/t"
               "&fields[settings][0][name]=Host&fields[settings][0][code]=host&fields[settings][0][type]=STRING")

    result = call("batch", {"cmd": {"add": command, "get": "biconnector.connector.get?id=$result[add][id]"}}).json()

    item = result["result"]["result"]["get"]["item"]
    assert item["title"] == "Batch" and item["settings"][0]["code"] == "host"


def test_renamed_portal_redirects_rest_calls(b24, portal, token):
    old_endpoint = portal.client_endpoint
    b24.rename_portal(portal, "renamed.bitrix24.test")

    moved = requests.post(f"{old_endpoint}profile.json?x=1", json={"auth": token}, allow_redirects=False, timeout=10)
    again = requests.post(moved.headers["Location"], json={"auth": token}, timeout=10)

    assert moved.status_code == 302
    assert moved.headers["Location"] == f"{portal.client_endpoint}profile.json?x=1"
    assert portal.client_endpoint.endswith("/renamed.bitrix24.test/rest/")
    assert again.status_code == 200


def test_a_portal_address_can_be_made_to_redirect_anywhere(b24, portal, token):
    b24.redirect_rest(portal.domain, "https://elsewhere.example/rest/")

    moved = requests.post(f"{portal.client_endpoint}user.admin?x=1", json={"auth": token}, allow_redirects=False,
                          timeout=10)

    assert moved.status_code == 302
    assert moved.headers["Location"] == "https://elsewhere.example/rest/user.admin?x=1"
