"""The REST client against the fake portal: envelopes, nested errors, retries, batch, paging, renames."""
import socket

import pytest
from sqlalchemy import select

from bitrix_app.models import Portal, PortalHistory

from bitrix_app.services.errors import BitrixError
from bitrix_app.services.ratelimit import RateLimited
from bitrix_app.services.rest import BitrixClient, StaticCredentials, make_http_session

CONNECTOR = {
    "title": "Warehouse", "logo": "https://example.com/logo.svg", "urlCheck": "https://example.com/check",
    "urlData": "https://example.com/data", "urlTableList": "https://example.com/tables",
    "urlTableDescription": "https://example.com/describe",
    "settings": [{"name": "Host", "code": "host", "type": "STRING"}],
}


@pytest.fixture
def client(bitrix, installed_portal):
    client = bitrix.client(installed_portal.member_id)
    client.sleep = lambda seconds: None  # retries without waiting
    return client


def test_success_returns_result(client):
    assert client.call("user.admin") is True


def test_biconnector_error_nested_in_result_is_raised(client):
    with pytest.raises(BitrixError) as excinfo:
        client.call("biconnector.connector.update", {"id": 999, "fields": {"title": "x"}})
    assert excinfo.value.code == "CONNECTOR_NOT_FOUND"
    assert excinfo.value.status == 200
    assert excinfo.value.description == "Connector was not found."


def test_top_level_error_is_raised_with_status(client):
    with pytest.raises(BitrixError) as excinfo:
        client.call("no.such.method")
    assert (excinfo.value.code, excinfo.value.status) == ("ERROR_METHOD_NOT_FOUND", 404)


def test_codeless_title_error_of_source_update_is_an_error(fake, installed_portal, client):
    connector_id = fake.seed_connector(installed_portal, {**CONNECTOR, "urlCheck": f"{fake.url}/_demo_connector/check"})
    source_id = fake.seed_source(installed_portal, {"title": "S", "connectorId": connector_id, "settings": {"host": "h"}})
    with pytest.raises(BitrixError) as excinfo:
        client.call("biconnector.source.update", {"id": source_id, "fields": {"description": "no title"}})
    assert excinfo.value.code == "BITRIX_ERROR"
    assert excinfo.value.description == "All the fields are required."


def test_rate_limit_is_retried_with_backoff(fake, installed_portal, client):
    waits = []
    client.sleep = waits.append
    installed_portal.inject_503 = 2

    assert client.call("user.admin") is True
    assert waits == [1.0, 2.0]


def test_rate_limit_retries_are_bounded(installed_portal, client):
    installed_portal.inject_503 = 10
    with pytest.raises(BitrixError) as excinfo:
        client.call("user.admin")
    assert excinfo.value.code == "QUERY_LIMIT_EXCEEDED"
    assert excinfo.value.status == 503


def test_operation_time_limit_carries_reset_time(installed_portal, client):
    installed_portal.operation_time_limit_methods = {"user.current"}
    with pytest.raises(BitrixError) as excinfo:
        client.call("user.current")
    assert excinfo.value.code == "OPERATION_TIME_LIMIT"
    assert excinfo.value.status == 429
    assert excinfo.value.reset_at is not None


def test_html_error_page_becomes_a_clear_error(installed_portal, client):
    installed_portal.html_5xx = 1
    with pytest.raises(BitrixError) as excinfo:
        client.call("user.admin")
    assert excinfo.value.code == "INVALID_RESPONSE"
    assert excinfo.value.status >= 500


def test_expired_token_refreshes_once_and_retries(fake, installed_portal, client):
    fake.expire_access_tokens(installed_portal)
    assert client.call("user.admin") is True
    assert fake.refresh_count(installed_portal) == 1


def test_a_token_that_stays_expired_is_not_refreshed_forever(fake, installed_portal, client):
    fake.config.access_ttl = 0
    fake.expire_access_tokens(installed_portal)
    with pytest.raises(BitrixError) as excinfo:
        client.call("user.admin")
    assert excinfo.value.code == "expired_token"
    assert fake.refresh_count(installed_portal) == 1


def test_batch_reports_each_command(fake, installed_portal, client):
    connector_id = fake.seed_connector(installed_portal, CONNECTOR)
    outcome = client.batch({
        "ok": ("biconnector.connector.update", {"id": connector_id, "fields": {"title": "Renamed"}}),
        "missing": ("biconnector.connector.update", {"id": 999, "fields": {"title": "x"}}),
        "admin": ("user.admin", {}),
    })
    assert outcome.results == {"ok": True, "admin": True}
    assert outcome.errors["missing"].code == "CONNECTOR_NOT_FOUND"
    assert installed_portal.connectors[connector_id]["title"] == "Renamed"
    assert fake.count_requests(installed_portal, "batch") == 1


def test_batch_refuses_more_than_fifty_commands(client):
    with pytest.raises(ValueError):
        client.batch({str(i): ("user.admin", {}) for i in range(51)})


def test_list_all_pages_until_a_short_page(fake, installed_portal, client):
    registered = len(installed_portal.connectors)  # the gateway's own, added at install
    lists_before = fake.count_requests(installed_portal, "biconnector.connector.list")
    for number in range(120):
        fake.seed_connector(installed_portal, {**CONNECTOR, "title": f"C{number}"})
    batches_before = fake.count_requests(installed_portal, "batch")
    items = client.list_all("biconnector.connector.list")
    assert len(items) == 120 + registered
    assert len({item["id"] for item in items}) == 120 + registered
    # The first page alone, then the other pages speculatively in one batch.
    assert fake.count_requests(installed_portal, "biconnector.connector.list") - lists_before == 1
    assert fake.count_requests(installed_portal, "batch") - batches_before == 1


def seed_sources(fake, portal, count: int) -> set[int]:
    connector_id = fake.seed_connector(portal, CONNECTOR)
    return {fake.seed_source(portal, {"title": f"S{n}", "connectorId": connector_id, "settings": {"host": "h"}})
            for n in range(count)}


def test_batched_pages_read_every_object_exactly_once_despite_the_unordered_fake(fake, installed_portal, client):
    ids = seed_sources(fake, installed_portal, 1234)  # 25 pages: the first alone, 24 in one batch
    before = fake.count_requests(installed_portal)
    items = client.list_all("biconnector.source.list")
    assert sorted(item["id"] for item in items) == sorted(ids)
    assert [item["id"] for item in items] == sorted(ids)  # id ASC across pages
    assert fake.count_requests(installed_portal) - before == 2


def test_more_than_fifty_pages_take_further_batches(fake, installed_portal, client):
    ids = seed_sources(fake, installed_portal, 2600)  # 53 pages: 1 + 50 in a batch + 2 in another
    before = fake.count_requests(installed_portal, "batch")
    items = client.list_all("biconnector.source.list")
    assert [item["id"] for item in items] == sorted(ids)
    assert fake.count_requests(installed_portal, "batch") - before == 2


def test_several_lists_share_their_requests(fake, installed_portal, client):
    ids = seed_sources(fake, installed_portal, 120)
    before = fake.count_requests(installed_portal)
    lists = client.list_many({"connectors": ("biconnector.connector.list", {}),
                              "sources": ("biconnector.source.list", {"filter": {">id": 0}})})
    assert {item["id"] for item in lists["sources"]} == ids and len(lists["sources"]) == len(ids)
    assert {item["id"] for item in lists["connectors"]} == set(installed_portal.connectors)
    assert fake.count_requests(installed_portal) - before == 2  # first pages together, then the rest


def test_list_errors_inside_a_batch_are_raised(fake, installed_portal, client):
    with pytest.raises(BitrixError) as excinfo:
        client.list_many({"connectors": ("biconnector.connector.list", {}),
                          "sources": ("biconnector.source.list", {"filter": {"nonsense": 1}})})
    assert excinfo.value.code == "VALIDATION_FIELD_NOT_ALLOWED_IN_FILTER"


class Rider:
    """An `Along` that sends `user.admin` with the further pages and records what it saw."""

    def __init__(self, commands=None, meanwhile=lambda: None):
        self.wanted = {"admin": ("user.admin", {})} if commands is None else commands
        self.meanwhile = meanwhile  # runs between the read's requests
        self.seen: list[tuple[dict, set]] = []
        self.outcomes = []

    def commands(self, read, more):
        self.seen.append(({name: len(items) for name, items in read.items()}, more))
        self.meanwhile()
        return self.wanted

    def take(self, outcome):
        self.outcomes.append(outcome)


LISTS = {"connectors": ("biconnector.connector.list", {}), "sources": ("biconnector.source.list", {})}


def test_commands_along_a_read_ride_in_its_second_request_in_place_of_a_speculative_page(
        fake, installed_portal, client):
    ids = seed_sources(fake, installed_portal, 120)
    rider, before = Rider(), fake.count_requests(installed_portal)

    lists = client.list_many(LISTS, along=rider)

    assert {item["id"] for item in lists["sources"]} == ids and len(lists["sources"]) == len(ids)
    assert fake.count_requests(installed_portal) - before == 2
    assert rider.seen == [({"connectors": len(installed_portal.connectors), "sources": 50}, {"sources"})]
    [outcome] = rider.outcomes
    assert (outcome.results, outcome.errors) == ({"admin": True}, {})  # its own commands only, not the pages
    assert [entry["method"] for entry in fake.requests_log if entry["in_batch"]][-50:] == \
        ["biconnector.source.list"] * 49 + ["user.admin"]


def test_nothing_rides_when_every_list_fits_its_first_page(fake, installed_portal, client):
    seed_sources(fake, installed_portal, 10)
    rider, before = Rider(), fake.count_requests(installed_portal)
    client.list_many(LISTS, along=rider)
    assert (rider.seen, rider.outcomes, fake.count_requests(installed_portal) - before) == ([], [], 1)


def test_commands_along_get_their_outcome_before_a_page_error_is_raised(fake, installed_portal, client):
    seed_sources(fake, installed_portal, 60)
    rider = Rider(meanwhile=lambda: installed_portal.operation_time_limit_methods.add("biconnector.source.list"))

    with pytest.raises(BitrixError) as excinfo:
        client.list_many(LISTS, along=rider)

    assert excinfo.value.code == "OPERATION_TIME_LIMIT"  # page 2 was refused
    assert [outcome.results for outcome in rider.outcomes] == [{"admin": True}]


@pytest.mark.parametrize("commands", [{"p1": ("user.admin", {})}, {f"a{n}": ("user.admin", {}) for n in range(50)}])
def test_commands_along_must_leave_a_page_and_the_page_keys_alone(fake, installed_portal, client, commands):
    seed_sources(fake, installed_portal, 60)
    with pytest.raises(ValueError):
        client.list_many(LISTS, along=Rider(commands))


def test_list_parameters_a_batch_cannot_carry_are_paged_with_single_calls(fake, installed_portal, client):
    ids = seed_sources(fake, installed_portal, 60)
    before = (fake.count_requests(installed_portal, "biconnector.source.list"), fake.count_requests(installed_portal))
    items = client.list_all("biconnector.source.list", {"filter": {"active": True}})
    assert {item["id"] for item in items} == ids
    assert fake.count_requests(installed_portal, "biconnector.source.list") - before[0] == 2
    assert fake.count_requests(installed_portal) - before[1] == 2


def test_user_token_cannot_be_refreshed(fake, installed_portal):
    tokens = fake.issue_tokens(installed_portal, installed_portal.admin)
    client = BitrixClient(installed_portal.client_endpoint, StaticCredentials(tokens["access_token"]), make_http_session())
    assert client.call("user.admin") is True
    fake.expire_access_tokens(installed_portal)
    with pytest.raises(BitrixError) as excinfo:
        client.call("user.admin")
    assert excinfo.value.code == "expired_token"


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                   "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture
def no_proxy_environment(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_a_proxy_the_environment_is_not_searched_on_every_request(fake, installed_portal, no_proxy_environment):
    import requests.sessions

    tokens = fake.issue_tokens(installed_portal, installed_portal.admin)
    credentials = StaticCredentials(tokens["access_token"])
    client = BitrixClient(installed_portal.client_endpoint, credentials, make_http_session())
    searched = lambda *args, **kwargs: pytest.fail("the environment was searched for this request")  # noqa: E731
    no_proxy_environment.setattr(requests.sessions, "get_environ_proxies", searched)
    no_proxy_environment.setattr(requests.sessions, "get_netrc_auth", searched)

    assert client.call("user.admin") is True


def test_a_configured_proxy_and_ca_bundle_are_still_honoured(no_proxy_environment, tmp_path):
    no_proxy_environment.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    assert make_http_session().verify == str(tmp_path / "ca.pem")

    no_proxy_environment.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert make_http_session().trust_env is True  # requests applies it, and NO_PROXY, per request


def test_network_failure_is_a_bitrix_error():
    client = BitrixClient("http://127.0.0.1:9/rest/", StaticCredentials("t"), make_http_session(), timeout=(0.5, 0.5))
    with pytest.raises(BitrixError) as excinfo:
        client.call("user.admin")
    assert excinfo.value.code in {"NETWORK_ERROR", "NETWORK_TIMEOUT"}
    assert "t" not in excinfo.value.description.split()


class SamePageServer:
    """An HTTP stand-in that answers every list call with the same full page."""

    def __init__(self):
        self.calls = 0

    def post(self, url, json, timeout, allow_redirects):
        import requests

        self.calls += 1
        page = [{"id": i} for i in range(50)]
        result = {"result": {key: page for key in json["cmd"]}} if url.endswith("/batch") else page
        response = requests.Response()
        response.status_code = 200
        response._content = __import__("json").dumps({"result": result}).encode()
        return response


def test_list_all_stops_when_the_server_ignores_page():
    http = SamePageServer()
    client = BitrixClient("https://portal.example/rest/", StaticCredentials("t"), http)
    assert len(client.list_all("biconnector.connector.list")) == 50
    assert http.calls == 2  # the first page, then one batch of pages that all repeat it


# --- a renamed portal (issue 6) -------------------------------------------------------------------

def stored_portal(bitrix, member_id) -> Portal:
    with bitrix.session_factory() as session:
        return session.scalars(select(Portal).where(Portal.member_id == member_id)).one()


def address_history(bitrix, member_id) -> list[str]:
    with bitrix.session_factory() as session:
        return list(session.scalars(select(PortalHistory.detail).where(
            PortalHistory.member_id == member_id, PortalHistory.kind == "address").order_by(PortalHistory.id)))


class ConnectionCounter:
    """A listening socket that only counts connections: where a token must never be sent."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.url = f"https://127.0.0.1:{self.socket.getsockname()[1]}"

    def connections(self) -> int:
        count = 0
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return count
            connection.close()
            count += 1


def test_a_renamed_portal_is_followed_once_and_its_new_address_stored(fake, installed_portal, bitrix, client):
    member_id = installed_portal.member_id
    fake.rename_portal(installed_portal, "renamed.bitrix24.test")

    assert client.call("user.admin") is True

    stored = stored_portal(bitrix, member_id)
    assert (stored.domain, stored.client_endpoint) == ("renamed.bitrix24.test", installed_portal.client_endpoint)
    assert address_history(bitrix, member_id) == ["alpha.bitrix24.test -> renamed.bitrix24.test"]
    sent = client.requests_sent
    assert client.call("user.admin") is True
    assert client.requests_sent - sent == 1  # no redirect any more: one slot per call
    fresh = bitrix.client(member_id)
    assert fresh.endpoint == installed_portal.client_endpoint
    assert fresh.call("user.admin") is True and fresh.requests_sent == 1


def test_a_redirect_the_oauth_server_does_not_confirm_is_not_followed(fake, installed_portal, bitrix, client):
    elsewhere = ConnectionCounter()
    fake.redirect_rest(installed_portal.domain, f"{elsewhere.url}/portal/rest/")

    with pytest.raises(BitrixError) as excinfo:
        client.call("user.admin")

    assert excinfo.value.code == "PORTAL_MOVED"
    assert "127.0.0.1" in excinfo.value.description and "not sent" in excinfo.value.description
    assert elsewhere.connections() == 0  # the token never went there
    stored = stored_portal(bitrix, installed_portal.member_id)
    assert stored.domain == installed_portal.domain and address_history(bitrix, installed_portal.member_id) == []


def test_a_user_token_is_not_sent_after_a_redirect(fake, installed_portal, bitrix):
    user_token = fake.issue_tokens(installed_portal, installed_portal.admin)["access_token"]
    client = bitrix.user_client(installed_portal.client_endpoint, user_token)
    fake.rename_portal(installed_portal, "renamed.bitrix24.test")
    with pytest.raises(BitrixError) as excinfo:
        client.call("user.admin")
    assert excinfo.value.code == "PORTAL_MOVED"
    assert client.requests_sent == 1


def test_a_redirect_the_portal_keeps_answering_is_followed_only_once(fake, installed_portal, bitrix, client):
    fake.rename_portal(installed_portal, "renamed.bitrix24.test")
    fake.redirect_rest("renamed.bitrix24.test", installed_portal.client_endpoint)  # a loop onto itself
    with pytest.raises(BitrixError) as excinfo:
        client.call("user.admin")
    assert excinfo.value.code == "PORTAL_MOVED"
    assert client.requests_sent == 2


# --- admission control (services/ratelimit.py) ---------------------------------------------------

def fill_bucket(bitrix, portal, slots: int) -> None:
    """Reserve `slots` requests in the portal's shared bucket, as other workers would."""
    member_id = portal.member_id
    for _ in range(slots):
        bitrix.limiter.store.reserve(f"portal:{member_id}", bitrix.limiter.rate_for(member_id))


def test_a_slot_beyond_the_web_cap_is_refused_and_nothing_is_sent(fake, installed_portal, bitrix, client):
    fill_bucket(bitrix, installed_portal, 110)  # burst 50, then 30 s of queue at 2/s
    before = fake.count_requests(installed_portal)

    with pytest.raises(RateLimited) as refused:
        client.call("user.admin")

    assert (refused.value.code, refused.value.status) == ("PORTAL_BUSY", 503)
    assert refused.value.retry_after >= 20
    assert fake.count_requests(installed_portal) == before and client.requests_sent == 0


def test_a_web_client_backs_off_only_within_its_cap_and_a_job_client_longer(bitrix, installed_portal, client):
    web_waits, job_waits = [], []
    job = bitrix.for_jobs().client(installed_portal.member_id)
    client.sleep, job.sleep = web_waits.append, job_waits.append
    installed_portal.inject_503 = 10

    for each in (client, job):
        with pytest.raises(BitrixError, match="QUERY_LIMIT_EXCEEDED"):
            each.call("user.admin")

    assert (client.max_wait, job.max_wait) == (3.0, 120.0)  # BITRIX_WEB_MAX_WAIT, BITRIX_JOB_MAX_WAIT
    assert web_waits == [1.0, 2.0]  # 4 s more would pass the web tier's 3 s
    assert job_waits == [1.0, 2.0, 4.0]
