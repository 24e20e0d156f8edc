"""The installer page (POST /install), driven by the fake portal over real HTTP."""
import requests
from sqlalchemy import func, select

from bitrix_app.models import Portal, PortalHistory, PortalStatus, PortalToken


def stored_portal(bitrix, member_id):
    with bitrix.session_factory() as session:
        portal = session.scalars(select(Portal).where(Portal.member_id == member_id)).first()
        if portal is not None:
            session.expunge(portal)
        return portal


def stored_token(bitrix, member_id):
    with bitrix.session_factory() as session:
        return session.scalars(
            select(PortalToken).join(Portal).where(Portal.member_id == member_id)
        ).first()


def installer_post(app, fields: dict, query: dict | None = None):
    return requests.post(f"{app.live_url}/install", params=query or {"DOMAIN": "x", "PROTOCOL": "1", "LANG": "en"},
                         data=fields, timeout=10)


def test_install_stores_portal_tokens_and_binds_events(fake, portal, bitrix, app):
    response = fake.install(portal)

    assert response.status_code == 200
    assert "installFinish" in response.text
    stored = stored_portal(bitrix, portal.member_id)
    assert stored.domain == portal.domain
    assert stored.client_endpoint == portal.client_endpoint
    assert stored.status == PortalStatus.ACTIVE
    assert bitrix.tokens.application_token(stored) == portal.application_token
    bound = {(item["event"].upper(), item["handler"]) for item in portal.bound_events}
    assert ("ONAPPUNINSTALL", f"{app.live_url}/events") in bound
    assert ("ONAPPUPDATE", f"{app.live_url}/events") in bound
    # The stored token works: a call through the stored token reaches the portal.
    assert bitrix.client(portal.member_id).call("user.admin") is True


def test_installer_page_never_contains_tokens(fake, portal, bitrix):
    response = fake.install(portal)
    access = bitrix.tokens.current(portal.member_id).value
    assert access not in response.text
    assert bitrix.tokens.refresh_token(portal.member_id) not in response.text
    assert portal.application_token not in response.text


def test_reinstall_updates_the_same_record(fake, portal, bitrix):
    fake.install(portal)
    first = stored_token(bitrix, portal.member_id)
    fake.install(portal)
    second = stored_token(bitrix, portal.member_id)

    with bitrix.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Portal)) == 1
        kinds = list(session.scalars(select(PortalHistory.kind).order_by(PortalHistory.id)))
    assert second.version > first.version
    assert second.access_token_encrypted != first.access_token_encrypted
    assert kinds[:2] == ["install", "reinstall"]
    # Events are not bound twice.
    handlers = [item for item in portal.bound_events if item["event"].upper() == "ONAPPUNINSTALL"]
    assert len(handlers) == 1


def test_forged_install_with_unknown_tokens_is_rejected_and_changes_nothing(fake, portal, bitrix, app):
    fake.install(portal)
    before = stored_token(bitrix, portal.member_id)

    response = installer_post(app, {
        "AUTH_ID": "forged-access", "REFRESH_ID": "forged-refresh", "AUTH_EXPIRES": "3600",
        "APPLICATION_TOKEN": "forged-app-token", "member_id": portal.member_id,
        "SERVER_ENDPOINT": "https://evil.example/rest/", "PLACEMENT": "DEFAULT",
    }, {"DOMAIN": "evil.example", "PROTOCOL": "1", "LANG": "en"})

    assert response.status_code == 401
    assert "INVALID_AUTH" in response.text
    after = stored_token(bitrix, portal.member_id)
    assert (after.version, after.access_token_encrypted) == (before.version, before.access_token_encrypted)
    assert bitrix.tokens.application_token(stored_portal(bitrix, portal.member_id)) == portal.application_token


def test_install_with_tokens_of_another_portal_is_rejected(fake, portal, bitrix, app):
    fake.install(portal)
    other = fake.add_portal(domain="other.bitrix24.test")
    other_tokens = fake.issue_tokens(other, other.admin)

    response = installer_post(app, {
        "AUTH_ID": other_tokens["access_token"], "REFRESH_ID": other_tokens["refresh_token"],
        "AUTH_EXPIRES": "3600", "APPLICATION_TOKEN": "whatever", "member_id": portal.member_id,
    })

    assert response.status_code == 403
    assert "MEMBER_ID_MISMATCH" in response.text
    assert bitrix.tokens.application_token(stored_portal(bitrix, portal.member_id)) == portal.application_token


def test_posted_domain_is_ignored(fake, portal, bitrix, app):
    tokens = fake.issue_tokens(portal, portal.admin)
    response = installer_post(app, {
        "AUTH_ID": tokens["access_token"], "REFRESH_ID": tokens["refresh_token"], "AUTH_EXPIRES": "3600",
        "APPLICATION_TOKEN": "app-token", "member_id": portal.member_id,
    }, {"DOMAIN": "attacker.example", "PROTOCOL": "1", "LANG": "en"})

    assert response.status_code == 200
    stored = stored_portal(bitrix, portal.member_id)
    assert stored.domain == portal.domain
    assert "attacker.example" not in stored.client_endpoint


def test_non_admin_cannot_install(fake, portal, bitrix, app):
    user = portal.add_user(name="Regular User", admin=False)
    tokens = fake.issue_tokens(portal, user)
    response = installer_post(app, {
        "AUTH_ID": tokens["access_token"], "REFRESH_ID": tokens["refresh_token"], "AUTH_EXPIRES": "3600",
        "APPLICATION_TOKEN": "app-token", "member_id": portal.member_id,
    })
    assert response.status_code == 403
    assert "NOT_ADMIN" in response.text
    assert stored_portal(bitrix, portal.member_id) is None


def test_missing_fields_get_a_clear_400(app):
    response = installer_post(app, {"member_id": "abc"})
    assert response.status_code == 400
    assert "MISSING_FIELDS" in response.text
    assert "AUTH_ID" in response.text


def test_get_is_not_allowed(app):
    response = requests.get(f"{app.live_url}/install", timeout=10)
    assert response.status_code == 405


def test_absurd_lifetime_is_clamped_not_a_crash(fake, portal, app, bitrix):
    tokens = fake.issue_tokens(portal, portal.admin)
    response = installer_post(app, {
        "AUTH_ID": tokens["access_token"], "REFRESH_ID": tokens["refresh_token"], "AUTH_EXPIRES": "9" * 40,
        "APPLICATION_TOKEN": "app-token", "member_id": portal.member_id,
    })
    assert response.status_code == 200
    with bitrix.session_factory() as session:
        expires_at = session.scalar(select(PortalToken.expires_at))
    from bitrix_app.services.tokens import as_utc
    from datetime import datetime, timedelta, timezone
    assert as_utc(expires_at) < datetime.now(timezone.utc) + timedelta(days=2)


def test_non_ascii_member_id_is_a_4xx(fake, portal, app):
    tokens = fake.issue_tokens(portal, portal.admin)
    response = installer_post(app, {
        "AUTH_ID": tokens["access_token"], "REFRESH_ID": tokens["refresh_token"], "AUTH_EXPIRES": "3600",
        "APPLICATION_TOKEN": "app-token", "member_id": "портал-ü",
    })
    assert response.status_code == 403
    assert "MEMBER_ID_MISMATCH" in response.text


# --- verification budget per client address (issue 12) ---------------------------------------------

def forged_install(client, address: str):
    return client.post("/install", query_string={"DOMAIN": "x", "LANG": "en"}, environ_base={"REMOTE_ADDR": address},
                       data={"AUTH_ID": "forged", "REFRESH_ID": "forged", "AUTH_EXPIRES": "3600",
                             "APPLICATION_TOKEN": "forged", "member_id": "forged-member"})


def test_anonymous_installs_are_throttled_per_client_address(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "VERIFY_RATE_PER_MINUTE", 3)

    answers = [forged_install(client, "198.51.100.7").status_code for _ in range(3)]
    throttled = forged_install(client, "198.51.100.7")

    assert answers == [401, 401, 401]  # each one asked the OAuth server (app.info) and was refused
    assert throttled.status_code == 429
    assert b"TOO_MANY_REQUESTS" in throttled.data
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert forged_install(client, "198.51.100.8").status_code == 401  # another address has its own budget


def test_the_verification_budget_lives_in_the_shared_rate_limit_store(app, client, bitrix, monkeypatch):
    from bitrix_app.models import RateLimitBucket

    monkeypatch.setitem(app.config, "VERIFY_RATE_PER_MINUTE", 3)
    forged_install(client, "198.51.100.9")
    with bitrix.session_factory() as session:
        keys = set(session.scalars(select(RateLimitBucket.key)))
    assert "verify:198.51.100.9" in keys  # every worker and process sees the same budget


def test_one_ipv6_client_cannot_escape_the_budget_by_rotating_inside_its_64(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "VERIFY_RATE_PER_MINUTE", 2)
    assert forged_install(client, "2001:db8:1:2::1").status_code == 401
    assert forged_install(client, "2001:db8:1:2::ffff").status_code == 401
    assert forged_install(client, "2001:db8:1:2:aaaa::1").status_code == 429
    assert forged_install(client, "2001:db8:1:3::1").status_code == 401


def test_a_budget_of_zero_turns_the_throttle_off(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "VERIFY_RATE_PER_MINUTE", 0)
    assert {forged_install(client, "198.51.100.10").status_code for _ in range(5)} == {401}
