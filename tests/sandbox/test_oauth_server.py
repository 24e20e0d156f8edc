"""The authorization server: token endpoint (rotation, single use, races, errors) and app.info."""
from __future__ import annotations

import threading

import requests


def refresh(b24, refresh_token: str, *, method: str = "GET", **overrides) -> requests.Response:
    params = {"grant_type": "refresh_token", "client_id": b24.client_id, "client_secret": b24.client_secret,
              "refresh_token": refresh_token, **overrides}
    if method == "POST":
        return requests.post(f"{b24.url}/oauth/token/", data=params, timeout=10)
    return requests.get(f"{b24.url}/oauth/token/", params=params, timeout=10)


def test_refresh_returns_a_new_pair_with_the_documented_fields(b24, portal):
    first = b24.issue_tokens(portal)

    response = refresh(b24, first["refresh_token"])

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "expires", "expires_in", "scope", "domain",
                         "server_endpoint", "status", "client_endpoint", "member_id", "user_id"}
    assert body["access_token"] != first["access_token"] and body["refresh_token"] != first["refresh_token"]
    assert body["domain"] == b24.url.split("://")[1]  # the authorization server, not the portal
    assert body["client_endpoint"] == portal.client_endpoint
    assert body["server_endpoint"] == f"{b24.url}/rest/"
    assert body["scope"] == "biconnector,placement,user"
    assert (body["member_id"], body["user_id"], body["expires_in"], body["status"]) == (portal.member_id, 1, 3600, "P")
    assert b24.refresh_count(portal) == 1


def test_refresh_tokens_are_single_use_and_kill_their_access_token(b24, portal, call):
    first = b24.issue_tokens(portal)
    second = refresh(b24, first["refresh_token"]).json()

    reused = refresh(b24, first["refresh_token"])
    old_access = call("profile", auth=first["access_token"])
    new_access = call("profile", auth=second["access_token"])

    assert reused.status_code == 400
    assert reused.json() == {"error": "invalid_grant", "error_description": "Invalid grant"}
    assert old_access.status_code == 401 and old_access.json()["error"] == "expired_token"
    assert new_access.status_code == 200
    assert refresh(b24, second["refresh_token"], method="POST").status_code == 200  # POST form works too


def test_independent_chains_do_not_affect_each_other(b24, portal, call):
    install_chain, iframe_chain = b24.issue_tokens(portal), b24.issue_tokens(portal)

    refresh(b24, install_chain["refresh_token"])

    assert call("profile", auth=iframe_chain["access_token"]).status_code == 200
    assert refresh(b24, iframe_chain["refresh_token"]).status_code == 200


def test_concurrent_refreshes_of_one_token_have_exactly_one_winner(b24, portal):
    b24.config.refresh_latency = 0.3
    refresh_token = b24.issue_tokens(portal)["refresh_token"]
    statuses: list[int] = []

    def worker():
        statuses.append(refresh(b24, refresh_token).status_code)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200, 400, 400, 400, 400]
    assert b24.refresh_count(portal) == 1
    assert b24.token_requests(portal) == 5


def test_client_credentials_are_checked(b24, portal):
    refresh_token = b24.issue_tokens(portal)["refresh_token"]

    wrong_secret = refresh(b24, refresh_token, client_secret="nope")
    unknown_client = refresh(b24, refresh_token, client_id="app.other")

    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    assert unknown_client.status_code == 401 and unknown_client.json()["error"] == "invalid_client"
    assert refresh(b24, refresh_token).status_code == 200  # a refused request does not burn the token


def test_error_statuses_are_configurable(b24, portal):
    b24.config.invalid_grant_status = 401
    b24.config.invalid_client_status = 400

    assert refresh(b24, "unknown").status_code == 401
    assert refresh(b24, "unknown", client_secret="nope").status_code == 400


def test_expired_refresh_token_is_an_invalid_grant(b24, portal):
    refresh_token = b24.issue_tokens(portal)["refresh_token"]
    b24.clock.advance(180 * 86400 + 1)

    assert refresh(b24, refresh_token).json()["error"] == "invalid_grant"


def test_post_reads_the_form_body_not_the_query_string(b24, portal):
    refresh_token = b24.issue_tokens(portal)["refresh_token"]
    params = {"grant_type": "refresh_token", "client_id": b24.client_id, "client_secret": b24.client_secret,
              "refresh_token": refresh_token}

    response = requests.post(f"{b24.url}/oauth/token/", params=params, timeout=10)

    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_legacy_response_omits_expires_and_user_id(b24, portal):
    b24.config.token_response_legacy = True

    body = refresh(b24, b24.issue_tokens(portal)["refresh_token"]).json()

    assert "expires" not in body and "user_id" not in body and body["access_token"]


def test_payment_required_and_uninstalled_apps_get_no_tokens(b24, portal):
    portal.payment_required = True
    refresh_token = b24.issue_tokens(portal)["refresh_token"]

    unpaid = refresh(b24, refresh_token)
    portal.payment_required = False
    b24.uninstall(portal)
    uninstalled = refresh(b24, refresh_token)

    assert unpaid.json() == {"error": "PAYMENT_REQUIRED", "error_description": "Payment required"}
    assert uninstalled.status_code == 400 and uninstalled.json()["error"] == "invalid_grant"


def test_authorization_code_lives_30_seconds_and_is_single_use(b24, portal):
    def exchange(code: str) -> requests.Response:
        return requests.get(f"{b24.url}/oauth/token/", params={
            "grant_type": "authorization_code", "client_id": b24.client_id, "client_secret": b24.client_secret,
            "code": code}, timeout=10)

    code = b24.issue_auth_code(portal)
    late_code = b24.issue_auth_code(portal)

    assert exchange(code).status_code == 200
    assert exchange(code).json()["error"] == "invalid_grant"
    b24.clock.advance(31)
    assert exchange(late_code).json()["error"] == "invalid_grant"


def test_authorize_page_redirects_with_a_code(b24, portal):
    b24.redirect_uri = "http://127.0.0.1:9/oauth/callback"

    response = requests.get(f"{portal.base_url}/oauth/authorize/", params={"client_id": b24.client_id, "state": "xyz"},
                            allow_redirects=False, timeout=10)

    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(b24.redirect_uri) and "state=xyz" in location and f"member_id={portal.member_id}" in location


def test_token_requests_count_every_call(b24, portal):
    refresh_token = b24.issue_tokens(portal)["refresh_token"]

    refresh(b24, refresh_token, client_secret="nope")
    refresh(b24, refresh_token)
    refresh(b24, "unknown")

    assert b24.token_requests(portal) == 2
    assert b24.token_requests() == 3


def test_app_info_on_the_authorization_server(b24, portal):
    tokens = b24.issue_tokens(portal)

    before = requests.get(f"{b24.url}/rest/app.info", params={"auth": tokens["access_token"]}, timeout=10).json()
    b24.finish_install(portal)
    after = requests.post(f"{b24.url}/rest/app.info/", data={"auth": tokens["access_token"]}, timeout=10).json()

    result = before["result"]
    assert result["client_id"] == b24.client_id and result["user_id"] == 1 and "T" in result["expires"]
    assert result["install"] == {
        "installed": False, "version": 1, "status": "P", "scope": "biconnector,placement,user",
        "domain": portal.domain, "uri": portal.page_url, "client_endpoint": portal.client_endpoint,
        "member_id": portal.member_id, "member_type": "PORTAL"}
    assert after["result"]["install"]["installed"] is True
    assert set(before["time"]) >= {"start", "finish", "duration", "date_start", "date_finish"}


def test_app_info_rejects_bad_and_expired_tokens(b24, portal):
    access = b24.issue_tokens(portal)["access_token"]

    unknown = requests.get(f"{b24.url}/rest/app.info", params={"auth": "nope"}, timeout=10)
    b24.expire_access_tokens(portal)
    expired = requests.get(f"{b24.url}/rest/app.info", params={"auth": access}, timeout=10)

    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_token"
    assert expired.status_code == 401 and expired.json()["error"] == "expired_token"
    assert "time" not in expired.json()
