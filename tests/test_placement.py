"""POST /app: authenticating an iframe open, the page it renders, and its headers."""
from __future__ import annotations

import json
import re
from urllib.parse import urlencode, urlsplit

import pytest

from bitrix_app.models import Portal, PortalStatus, ReseedGrantRecord
from bitrix_app.sandbox.fake.lifecycle import frame_request
from bitrix_app.services.ratelimit import Rate
from bitrix_app.services.tab import authenticate_opening


def session_token_in(page: str) -> str:
    match = re.search(r'<meta name="session-token" content="([^"]+)"', page)
    assert match, "no session-token meta tag"
    return match.group(1)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def post_app(client, query: dict, form: dict):
    return client.post("/app?" + urlencode(query), data=form)


@pytest.fixture
def frame(fake, installed_portal):
    """The query string and form of a genuine iframe open by the portal's administrator."""
    return frame_request(fake, installed_portal, installed_portal.admin)


def set_status(bitrix, member_id: str, status: str) -> None:
    with bitrix.session_factory() as session, session.begin():
        session.query(Portal).filter_by(member_id=member_id).one().status = status


def stored_access_token(bitrix, member_id: str) -> str:
    return bitrix.tokens.current(member_id).value


# --- the happy path --------------------------------------------------------------------------

def test_admin_opens_the_tab(fake, installed_portal, bitrix, read_session):
    response = fake.open_app(installed_portal)
    assert response.status_code == 200
    assert "text/html" in response.headers["Content-Type"]
    page = response.text
    tokens = bitrix.tokens
    assert session_token_in(page)
    session = read_session(session_token_in(page))
    assert (session.member_id, session.user_id, session.is_admin, session.can_edit) == (
        installed_portal.member_id, installed_portal.admin.id, True, True)
    assert 'id="editors-panel"' in page and 'id="read-only-banner"' not in page
    assert stored_access_token(bitrix, installed_portal.member_id) not in page
    with bitrix.session_factory() as db:
        portal_row = db.query(Portal).filter_by(member_id=installed_portal.member_id).one()
        assert tokens.application_token(portal_row) not in page


def test_the_page_never_contains_the_users_bitrix_tokens(client, frame):
    query, form = frame
    page = post_app(client, query, form).text
    for secret in (form["AUTH_ID"], form["REFRESH_ID"], form["APPLICATION_TOKEN"]):
        assert secret not in page


def test_a_regular_user_gets_a_read_only_tab(fake, installed_portal, bitrix, read_session):
    reader = installed_portal.add_user("Olga Reader")
    page = fake.open_app(installed_portal, reader).text
    session = read_session(session_token_in(page))
    assert (session.user_id, session.is_admin, session.can_edit) == (reader.id, False, False)
    assert 'id="read-only-banner"' in page and 'id="editors-panel"' not in page


def test_an_allowed_user_gets_an_editable_tab(fake, installed_portal, bitrix, read_session):
    editor = installed_portal.add_user("Egor Editor")
    with bitrix.session_factory() as db, db.begin():
        db.query(Portal).filter_by(member_id=installed_portal.member_id).one().editor_user_ids = [editor.id]
    page = fake.open_app(installed_portal, editor).text
    assert read_session(session_token_in(page)).can_edit is True
    assert 'id="read-only-banner"' not in page and 'id="editors-panel"' not in page


def test_russian_portal_gets_russian_texts(fake, installed_portal):
    page = fake.open_app(installed_portal, lang="ru").text
    assert '<html lang="ru">' in page and "Коннекторы BI-конструктора" in page


def test_unknown_languages_fall_back_to_english(fake, installed_portal):
    page = fake.open_app(installed_portal, lang="de").text
    assert '<html lang="en">' in page


def test_placements_other_than_default_are_served_too(client, frame):
    query, form = frame
    form.update(PLACEMENT="REST_APP_URI", PLACEMENT_OPTIONS="{not json")
    assert post_app(client, query, form).status_code == 200
    form["PLACEMENT_OPTIONS"] = json.dumps({"connectorId": "3"})
    assert '"connectorId": "3"' in post_app(client, query, form).text


# --- headers ---------------------------------------------------------------------------------

def test_framing_is_allowed_only_for_the_stored_portal(client, frame, installed_portal):
    query, form = frame
    query["DOMAIN"] = "evil.example"  # the posted DOMAIN is never trusted
    response = post_app(client, query, form)
    policy = response.headers["Content-Security-Policy"]
    ancestors = next(part for part in policy.split("; ") if part.startswith("frame-ancestors"))
    # https://<stored domain>, plus the stored REST endpoint's origin (the sandbox portal, over http).
    assert ancestors.split()[1:] == [f"https://{installed_portal.domain}", _origin(installed_portal.client_endpoint)]
    assert "evil.example" not in policy
    assert "X-Frame-Options" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


def frame_ancestors_of(response) -> list[str]:
    policy = response.headers["Content-Security-Policy"]
    return next(part for part in policy.split("; ") if part.startswith("frame-ancestors")).split()[1:]


def test_a_renamed_portal_is_framed_by_its_new_address(fake, installed_portal, bitrix):
    fake.rename_portal(installed_portal, "renamed.bitrix24.test")

    response = fake.open_app(installed_portal)

    assert response.status_code == 200, response.text
    assert frame_ancestors_of(response) == ["https://renamed.bitrix24.test", _origin(installed_portal.client_endpoint)]
    with bitrix.session_factory() as session:
        stored = session.query(Portal).filter_by(member_id=installed_portal.member_id).one()
    assert (stored.domain, stored.client_endpoint) == ("renamed.bitrix24.test", installed_portal.client_endpoint)


def test_a_new_domain_in_the_iframe_post_is_checked_with_the_oauth_server(fake, installed_portal, bitrix):
    """The old name now belongs to another portal, so it does not redirect: only the posted DOMAIN
    tells that something changed, and only the authorization server says what."""
    fake.rename_portal(installed_portal, "renamed.bitrix24.test")
    fake.add_portal(domain="alpha.bitrix24.test")  # takes the old name
    query, form = frame_request(fake, installed_portal, installed_portal.admin)

    user = authenticate_opening(bitrix, form, "en", "127.0.0.1", query)

    assert (user.portal_domain, user.client_endpoint) == ("renamed.bitrix24.test", installed_portal.client_endpoint)
    assert user.is_admin and user.user_id == installed_portal.admin.id


def test_the_iframe_post_of_a_renamed_portal_is_framed_by_the_address_the_oauth_server_gives(
        fake, installed_portal):
    fake.rename_portal(installed_portal, "renamed.bitrix24.test")
    fake.add_portal(domain="alpha.bitrix24.test")  # the old name no longer redirects

    response = fake.open_app(installed_portal)

    assert response.status_code == 200, response.text
    assert frame_ancestors_of(response)[0] == "https://renamed.bitrix24.test"


def test_a_forged_domain_in_the_iframe_post_changes_nothing(fake, installed_portal, bitrix):
    query, form = frame_request(fake, installed_portal, installed_portal.admin)
    query["DOMAIN"] = "evil.example"

    user = authenticate_opening(bitrix, form, "en", "127.0.0.1", query)

    assert user.portal_domain == installed_portal.domain
    with bitrix.session_factory() as session:
        stored = session.query(Portal).filter_by(member_id=installed_portal.member_id).one()
    assert stored.domain == installed_portal.domain


def test_scripts_only_from_the_app_and_the_bx24_library(client, frame, app):
    query, form = frame
    policy = post_app(client, query, form).headers["Content-Security-Policy"]
    script_src = next(part for part in policy.split("; ") if part.startswith("script-src"))
    assert script_src == f"script-src 'self' {app.config['BITRIX_JS_SDK_URL']}"  # the library's own URL
    assert "unsafe-inline" not in policy and "object-src 'none'" in policy


def test_images_only_from_the_app_and_data_uris(client, frame):
    query, form = frame
    policy = post_app(client, query, form).headers["Content-Security-Policy"]
    assert "img-src 'self' data:" in policy.split("; ")
    assert not {"http:", "https:", "*"} & set(policy.replace(";", " ").split())


def test_the_page_knows_how_long_its_session_lasts(client, frame, app):
    query, form = frame
    page = post_app(client, query, form).text
    assert f'"sessionTtl": {app.config["SESSION_TOKEN_TTL"]}' in page


def test_the_page_loads_bx24_from_the_configured_url(client, frame, app):
    query, form = frame
    page = post_app(client, query, form).text
    assert f'<script src="{app.config["BITRIX_JS_SDK_URL"]}" async id="bx24-sdk"></script>' in page


# --- refusals --------------------------------------------------------------------------------

def assert_not_authorized(response) -> None:
    """Unknown, uninstalled and wrong application token look the same from outside (issue 15)."""
    assert response.status_code == 401
    assert "APP_NOT_AUTHORIZED" in response.text and "has to be opened from Bitrix24" in response.text
    assert "Traceback" not in response.text


def test_unknown_portal_is_not_authorized(client, frame):
    query, form = frame
    form["member_id"] = "no-such-member"
    assert_not_authorized(post_app(client, query, form))


def test_member_id_is_not_matched_by_domain(client, frame, installed_portal):
    query, form = frame
    form["member_id"] = installed_portal.domain
    assert_not_authorized(post_app(client, query, form))


def test_uninstalled_portal_is_refused(client, frame, bitrix, installed_portal):
    set_status(bitrix, installed_portal.member_id, PortalStatus.UNINSTALLED)
    query, form = frame
    assert_not_authorized(post_app(client, query, form))


@pytest.mark.parametrize("token", ["wrong", "", None])
def test_application_token_must_match(client, frame, token):
    query, form = frame
    if token is None:
        del form["APPLICATION_TOKEN"]
    else:
        form["APPLICATION_TOKEN"] = token
    assert_not_authorized(post_app(client, query, form))


def test_the_users_token_must_be_accepted_by_the_portal(client, frame):
    query, form = frame
    form["AUTH_ID"] = "forged-token"
    response = post_app(client, query, form)
    assert response.status_code == 401 and "INVALID_AUTH" in response.text


def test_a_token_of_another_portal_is_refused(fake, client, frame):
    other = fake.add_portal(domain="beta.bitrix24.test")
    query, form = frame
    form["AUTH_ID"] = fake.issue_tokens(other, other.admin)["access_token"]
    assert post_app(client, query, form).status_code == 401


def test_an_expired_user_token_is_refused(fake, client, frame):
    query, form = frame
    fake.expire_access_tokens()
    assert post_app(client, query, form).status_code == 401


@pytest.mark.parametrize("missing", ["member_id", "AUTH_ID"])
def test_missing_fields(client, frame, missing):
    query, form = frame
    del form[missing]
    response = post_app(client, query, form)
    assert response.status_code == 400 and "MISSING_FIELDS" in response.text


def test_get_is_not_allowed(client):
    assert client.get("/app").status_code == 405


def test_refusals_are_in_russian_for_russian_portals(client, frame):
    query, form = frame
    query["LANG"] = "ru"
    form["APPLICATION_TOKEN"] = "wrong"
    assert "Эту страницу нужно открывать из Битрикс24" in post_app(client, query, form).text


# --- needs re-authorization --------------------------------------------------------------------

def test_admin_sees_the_reauth_banner_and_the_grant_stays_on_the_server(client, frame, bitrix, installed_portal,
                                                                        read_session):
    set_status(bitrix, installed_portal.member_id, PortalStatus.NEEDS_REAUTH)
    query, form = frame
    page = post_app(client, query, form).text
    assert 'id="reauth-button"' in page
    assert form["AUTH_ID"] not in page and form["REFRESH_ID"] not in page
    handle = read_session(session_token_in(page)).reseed_grant
    with bitrix.session_factory() as db:
        stored = db.get(ReseedGrantRecord, handle)
        assert stored is not None and stored.user_id == installed_portal.admin.id
    assert len(handle) < 64  # a random handle, not the authorization (encrypted or not)


def test_regular_user_sees_the_banner_without_a_button_or_grant(fake, bitrix, installed_portal, read_session):
    set_status(bitrix, installed_portal.member_id, PortalStatus.NEEDS_REAUTH)
    page = fake.open_app(installed_portal, installed_portal.add_user("Olga Reader")).text
    assert 'id="reauth-banner"' in page and 'id="reauth-button"' not in page
    assert read_session(session_token_in(page)).reseed_grant is None


def test_active_portal_tokens_carry_no_grant(fake, bitrix, installed_portal, read_session):
    page = fake.open_app(installed_portal).text
    assert read_session(session_token_in(page)).reseed_grant is None


# --- header building blocks ------------------------------------------------------------------

def _user(domain: str, endpoint: str):
    from bitrix_app.services.tab import TabUser

    return TabUser("m", 1, "", True, True, domain, endpoint, "active")


def test_frame_ancestors_for_a_cloud_portal_is_just_its_https_address():
    from bitrix_app.placement import frame_ancestors

    assert frame_ancestors(_user("acme.bitrix24.com", "https://acme.bitrix24.com/rest/")) == "https://acme.bitrix24.com"


def test_frame_ancestors_never_echoes_odd_characters():
    from bitrix_app.placement import frame_ancestors

    assert frame_ancestors(_user("evil.com; script-src *", "javascript:alert(1)")) == "'none'"


def test_script_source_of_the_bx24_url_is_its_host_and_path():
    from bitrix_app.placement import script_source

    assert script_source("//api.bitrix24.com/api/v1/") == "api.bitrix24.com/api/v1/"
    assert script_source("https://api.bitrix24.com/api/v1/?v=2") == "https://api.bitrix24.com/api/v1/"
    assert script_source("https://cdn.example/bx24.js") == "https://cdn.example/bx24.js"
    assert script_source("https://cdn.example/a;script-src *") == ""
    assert script_source("https://evil.example *") == ""


# --- admission control: openings are unverified until Bitrix24 accepts the AUTH_ID -----------

@pytest.fixture
def budgets(bitrix, monkeypatch):
    """Small unverified budgets that do not drain during a test: per address 2 calls, per portal 5."""
    monkeypatch.setattr(bitrix.limiter, "unverified_per_address", Rate(0.001, 3))
    monkeypatch.setattr(bitrix.limiter, "unverified", Rate(0.001, 6))
    return bitrix.limiter


def from_address(address: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": address}}


def test_forged_openings_are_refused_per_address_before_they_reach_bitrix24(fake, client, frame, installed_portal,
                                                                            budgets):
    query, form = frame
    forged = {**form, "AUTH_ID": "garbage"}
    statuses = [post_app(client, query, forged).status_code for _ in range(2)]
    asked = fake.count_requests(installed_portal, "user.current")

    refused = post_app(client, query, forged)

    assert statuses == [401, 401]
    assert refused.status_code == 429 and "TOO_MANY_REQUESTS" in refused.text
    assert "opened on this portal too often" in refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert fake.count_requests(installed_portal, "user.current") == asked  # not sent, not charged to the portal


def test_a_flooding_address_does_not_lock_out_other_users_or_portals(fake, client, frame, installed_portal, budgets):
    query, form = frame
    for _ in range(3):
        post_app(client, query, {**form, "AUTH_ID": "garbage"})
    other = fake.add_portal(domain="beta.bitrix24.test")
    assert fake.install(other).status_code == 200
    other_query, other_form = frame_request(fake, other, other.admin)

    assert client.post("/app?" + urlencode(query), data=form, **from_address("203.0.113.5")).status_code == 200
    assert post_app(client, other_query, other_form).status_code == 200  # same address, another portal


def test_the_portals_unverified_budget_holds_across_addresses(fake, client, installed_portal, budgets):
    def opening(address):
        query, form = frame_request(fake, installed_portal, installed_portal.admin)
        return client.post("/app?" + urlencode(query), data=form, **from_address(address))

    assert opening("203.0.113.1").status_code == 200  # two calls: user.current, user.admin
    assert opening("203.0.113.2").status_code == 200
    refused = opening("203.0.113.3")  # one call left in the portal's budget of five

    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


def test_an_opening_is_refused_with_503_when_the_portals_queue_is_full(fake, client, frame, installed_portal, bitrix):
    member_id = installed_portal.member_id
    for _ in range(70):  # other workers filled the bucket: the next slot is ~10 s away, the web cap is 3 s
        bitrix.limiter.store.reserve(f"portal:{member_id}", bitrix.limiter.rate_for(member_id))
    query, form = frame
    query["LANG"] = "ru"

    response = post_app(client, query, form)

    assert response.status_code == 503 and "PORTAL_BUSY" in response.text
    assert "Повторите через несколько секунд" in response.text
    assert int(response.headers["Retry-After"]) >= 1
