"""POST /events: form-encoded Bitrix24 app events, delivered by the fake portal over real HTTP."""
import pytest
import requests
from sqlalchemy import func, select, update

from bitrix_app.models import (ChangeRecord, ConnectorSecretSettings, Database, GatewayConnector, Portal, PortalHistory,
                               PortalStatus, PortalToken, PortalUserName)
from bitrix_app.services import lifecycle
from bitrix_app.services.errors import OAuthError, PortalUnavailable
from bitrix_app.services.tokens import portal_by_member_id


def load(bitrix, member_id):
    with bitrix.session_factory() as session:
        portal = session.scalars(select(Portal).where(Portal.member_id == member_id)).one()
        token = session.scalars(select(PortalToken).where(PortalToken.portal_id == portal.id)).first()
        history = list(session.scalars(select(PortalHistory.kind).where(PortalHistory.member_id == member_id)
                                       .order_by(PortalHistory.id)))
        session.expunge_all()
        return portal, token, history


def test_onappinstall_without_ui_stores_tokens(fake, portal, bitrix):
    response = fake.install(portal, ui=False)

    assert response.status_code == 200, response.text
    stored, token, history = load(bitrix, portal.member_id)
    assert stored.status == PortalStatus.ACTIVE
    assert token is not None
    assert bitrix.tokens.application_token(stored) == portal.application_token
    assert history == ["install"]
    assert bitrix.client(portal.member_id).call("user.admin") is True


def test_uninstall_deletes_tokens_and_marks_portal(fake, installed_portal, bitrix):
    response = fake.uninstall(installed_portal, clean=False)

    assert response.status_code == 200, response.text
    stored, token, history = load(bitrix, installed_portal.member_id)
    assert token is None
    assert stored.status == PortalStatus.UNINSTALLED
    assert history[-1] == "uninstall"
    try:
        bitrix.client(installed_portal.member_id).call("user.current")
    except PortalUnavailable as exc:
        assert exc.code == "PORTAL_UNINSTALLED"
    else:
        raise AssertionError("a call for an uninstalled portal must fail before any request")


def test_uninstall_with_clean_purges_portal_data(fake, installed_portal, bitrix):
    with bitrix.session_factory() as session, session.begin():
        portal = session.scalars(select(Portal)).one()
        portal.editor_user_ids = [5, 7]

    fake.uninstall(installed_portal, clean=True)

    stored, token, history = load(bitrix, installed_portal.member_id)
    assert stored.editor_user_ids == []
    assert token is None
    assert history == ["uninstall"]  # earlier history purged, the uninstall itself recorded


def test_uninstall_is_idempotent(fake, installed_portal, bitrix):
    application_token = installed_portal.application_token
    fake.uninstall(installed_portal)
    again = fake.send_event(installed_portal, "ONAPPUNINSTALL", data={"CLEAN": "0"},
                            auth_overrides={"application_token": application_token})
    assert again is not None and again.status_code == 200
    stored, token, _ = load(bitrix, installed_portal.member_id)
    assert stored.status == PortalStatus.UNINSTALLED and token is None


def test_forged_uninstall_is_rejected_and_changes_nothing(fake, installed_portal, bitrix, app):
    before = load(bitrix, installed_portal.member_id)
    response = requests.post(f"{app.live_url}/events", data={
        "event": "ONAPPUNINSTALL", "data[CLEAN]": "1",
        "auth[member_id]": installed_portal.member_id, "auth[application_token]": "forged",
        "auth[domain]": installed_portal.domain,
    }, timeout=10)

    assert response.status_code == 401
    assert response.json()["error"] == "INVALID_APPLICATION_TOKEN"
    after = load(bitrix, installed_portal.member_id)
    assert after[0].status == before[0].status == PortalStatus.ACTIVE
    assert after[1].version == before[1].version
    assert after[2] == before[2]


def test_event_for_unknown_portal_is_rejected(app):
    response = requests.post(f"{app.live_url}/events", data={
        "event": "ONAPPUNINSTALL", "auth[member_id]": "unknown", "auth[application_token]": "x",
    }, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"] == "UNKNOWN_PORTAL"


def test_malformed_event_gets_400(app):
    response = requests.post(f"{app.live_url}/events", data={"foo": "bar"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "MALFORMED_EVENT"


def test_onappupdate_replaces_application_token_tokens_and_rebinds(fake, installed_portal, bitrix, app):
    fake.config.handlers_removed_before_update_event = True  # the order is unconfirmed; see the next test
    _, token_before, _ = load(bitrix, installed_portal.member_id)
    old_application_token = installed_portal.application_token

    response = fake.update_app(installed_portal)

    assert response is not None and response.status_code == 200, getattr(response, "text", None)
    stored, token_after, history = load(bitrix, installed_portal.member_id)
    assert installed_portal.application_token != old_application_token
    assert bitrix.tokens.application_token(stored) == installed_portal.application_token
    assert token_after.version > token_before.version
    assert history[-1] == "update"
    bound = {(item["event"].upper(), item["handler"]) for item in installed_portal.bound_events}
    assert ("ONAPPUNINSTALL", f"{app.live_url}/events") in bound


def test_handlers_removed_after_onappupdate_are_bound_again_by_the_installer(fake, installed_portal, app):
    fake.config.handlers_removed_before_update_event = False
    fake.update_app(installed_portal)
    assert installed_portal.bound_events == []

    assert fake.install(installed_portal).status_code == 200  # Bitrix24 shows the new version's installer

    bound = {(item["event"].upper(), item["handler"]) for item in installed_portal.bound_events}
    assert {("ONAPPUNINSTALL", f"{app.live_url}/events"), ("ONAPPUPDATE", f"{app.live_url}/events")} <= bound


def test_onappupdate_with_a_regular_users_real_tokens_is_rejected(fake, installed_portal, bitrix):
    """Every portal user sees the application token in the iframe POST; that is not enough."""
    before = load(bitrix, installed_portal.member_id)
    user = installed_portal.add_user(name="Regular User", admin=False)
    tokens = fake.issue_tokens(installed_portal, user)
    response = fake.send_event(installed_portal, "ONAPPUPDATE", data={"VERSION": "2"}, auth_overrides={
        "application_token": "attacker-chosen", "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
    })
    assert response.status_code == 403
    assert response.json()["error"] == "NOT_ADMIN"
    after = load(bitrix, installed_portal.member_id)
    assert bitrix.tokens.application_token(after[0]) == installed_portal.application_token
    assert after[1].version == before[1].version


def test_uninstall_with_the_real_application_token_is_ignored_while_the_app_still_works(
        fake, installed_portal, bitrix, app):
    before = load(bitrix, installed_portal.member_id)
    response = requests.post(f"{app.live_url}/events", data={
        "event": "ONAPPUNINSTALL", "data[CLEAN]": "1", "auth[member_id]": installed_portal.member_id,
        "auth[application_token]": installed_portal.application_token,
    }, timeout=10)

    assert response.status_code == 409
    assert response.json()["error"] == "UNINSTALL_NOT_CONFIRMED"
    after = load(bitrix, installed_portal.member_id)
    assert after[0].status == PortalStatus.ACTIVE and after[1].version == before[1].version
    assert after[2] == before[2]


def test_failure_to_rebind_after_update_is_a_clear_502(fake, installed_portal):
    fake.config.handlers_removed_before_update_event = True
    original = fake.app_url
    installed_portal.html_5xx = 3  # the portal fails while we re-bind the handlers
    response = fake.update_app(installed_portal)
    assert fake.app_url == original
    assert response.status_code == 502
    assert "error_description" in response.json()


def test_forged_onappupdate_is_rejected(fake, installed_portal, bitrix):
    before = load(bitrix, installed_portal.member_id)
    response = fake.send_event(installed_portal, "ONAPPUPDATE", data={"VERSION": "2"}, auth_overrides={
        "application_token": "forged", "access_token": "forged", "refresh_token": "forged",
    })
    assert response.status_code == 401
    after = load(bitrix, installed_portal.member_id)
    assert bitrix.tokens.application_token(after[0]) == bitrix.tokens.application_token(before[0])
    assert after[1].version == before[1].version


def test_other_events_are_authenticated_then_ignored(installed_portal, app):
    def post(application_token):
        return requests.post(f"{app.live_url}/events", data={
            "event": "ONCRMDEALADD", "data[FIELDS][ID]": "1",
            "auth[member_id]": installed_portal.member_id, "auth[application_token]": application_token,
        }, timeout=10)

    assert post(installed_portal.application_token).json() == {"result": "ignored"}
    assert post("wrong").status_code == 401


# --- ONAPPUNINSTALL must be confirmed by Bitrix24 (fail closed) ----------------------------------

def seed_portal_data(bitrix, member_id):
    """Editors and a gateway database: what a forged CLEAN uninstall would destroy."""
    with bitrix.session_factory() as session, session.begin():
        portal = session.scalars(select(Portal).where(Portal.member_id == member_id)).one()
        portal.editor_user_ids = [5, 7]
        session.add(Database(portal_id=portal.id, title="Sales", kind="postgresql", connection_encrypted="x",
                             source_key=f"key-{member_id}", secret_hash="0" * 64))
        session.add(ConnectorSecretSettings(portal_id=portal.id, connector_id=3, codes=["password"]))
        session.add(ChangeRecord(portal_id=portal.id, object_type="source", object_id=4, actor_kind="user",
                                 actor_id=5, actor_name="Ann", via="tab", changes=[]))
        session.add(PortalUserName(portal_id=portal.id, user_id=5, name="Ann"))


def portal_data(bitrix, member_id):
    portal, token, history = load(bitrix, member_id)
    with bitrix.session_factory() as session:
        databases = session.scalar(select(func.count(Database.id)).where(Database.portal_id == portal.id))
        connectors = session.scalar(
            select(func.count(GatewayConnector.id)).where(GatewayConnector.portal_id == portal.id))
        app_records = sum(session.scalar(select(func.count()).select_from(model).where(model.portal_id == portal.id))
                          for model in (ConnectorSecretSettings, ChangeRecord, PortalUserName))
    return {"status": portal.status, "token": token and (token.version, token.access_token_encrypted),
            "editors": portal.editor_user_ids, "databases": databases, "connectors": connectors,
            "app_records": app_records,
            "history": [kind for kind in history if kind not in ("refresh", "refresh_failed")]}


def uninstall_event(app, portal, application_token=None, clean="1"):
    """ONAPPUNINSTALL as any portal user can send it: the application token is in every iframe POST."""
    return requests.post(f"{app.live_url}/events", data={
        "event": "ONAPPUNINSTALL", "data[CLEAN]": clean, "auth[member_id]": portal.member_id,
        "auth[domain]": portal.domain, "auth[application_token]": application_token or portal.application_token,
    }, timeout=30)


def stored_status_after_refresh_failure(fake, portal, bitrix, failure):
    fake.expire_access_tokens(portal)
    failure()
    with pytest.raises(OAuthError):
        bitrix.client(portal.member_id).call("user.admin")


def html_500(fake, portal, bitrix):
    portal.html_5xx = 1


def operation_time_limit(fake, portal, bitrix):
    portal.operation_time_limit_methods = {"app.info"}


def payment_required(fake, portal, bitrix):
    """The app already marked the portal payment_required; the token endpoint still says so."""
    stored_status_after_refresh_failure(fake, portal, bitrix, lambda: setattr(portal, "payment_required", True))


def needs_reauth(fake, portal, bitrix):
    """The stored refresh token already failed once, so failing again proves nothing."""
    spend = lambda: bitrix.oauth.refresh(bitrix.tokens.refresh_token(portal.member_id))  # noqa: E731
    stored_status_after_refresh_failure(fake, portal, bitrix, spend)


def portal_unreachable(fake, portal, bitrix):
    with bitrix.session_factory() as session, session.begin():
        session.execute(update(Portal).values(client_endpoint="http://127.0.0.1:9/rest/"))


@pytest.mark.parametrize("failure", [html_500, operation_time_limit, payment_required, needs_reauth,
                                     portal_unreachable])
def test_uninstall_that_bitrix24_does_not_confirm_changes_nothing(fake, installed_portal, bitrix, app, failure):
    seed_portal_data(bitrix, installed_portal.member_id)
    failure(fake, installed_portal, bitrix)
    before = portal_data(bitrix, installed_portal.member_id)

    response = uninstall_event(app, installed_portal)

    assert response.status_code == 409, response.text
    assert response.json()["error"] == "UNINSTALL_NOT_CONFIRMED"
    after = portal_data(bitrix, installed_portal.member_id)
    assert after == before and after["databases"] == 1 and after["editors"] == [5, 7]


@pytest.mark.parametrize("expired", [False, True])
def test_confirmed_uninstall_with_clean_also_deletes_gateway_data(fake, installed_portal, bitrix, expired):
    seed_portal_data(bitrix, installed_portal.member_id)
    if expired:  # the probe's refresh then gets invalid_grant instead of APPLICATION_NOT_FOUND
        fake.expire_access_tokens(installed_portal)
    assert portal_data(bitrix, installed_portal.member_id)["connectors"] > 0

    assert fake.uninstall(installed_portal, clean=True).status_code == 200

    after = portal_data(bitrix, installed_portal.member_id)
    assert (after["status"], after["token"], after["editors"]) == (PortalStatus.UNINSTALLED, None, [])
    assert (after["databases"], after["connectors"], after["history"]) == (0, 0, ["uninstall"])
    assert after["app_records"] == 0  # secret-setting choices, change history, cached user names


def test_real_uninstall_of_a_payment_required_portal_is_confirmed(fake, installed_portal, bitrix):
    payment_required(fake, installed_portal, bitrix)

    assert fake.uninstall(installed_portal).status_code == 200

    assert portal_data(bitrix, installed_portal.member_id)["status"] == PortalStatus.UNINSTALLED


def test_repeated_uninstall_never_purges(fake, installed_portal, bitrix, app):
    seed_portal_data(bitrix, installed_portal.member_id)
    application_token = installed_portal.application_token
    fake.uninstall(installed_portal, clean=False)
    before = portal_data(bitrix, installed_portal.member_id)

    response = uninstall_event(app, installed_portal, application_token, clean="1")

    assert response.status_code == 200
    assert portal_data(bitrix, installed_portal.member_id) == before


def reinstall_after_the_probe(monkeypatch, fake, portal, before_reinstall=lambda: None):
    """Let the probe run, then have the administrator install the app again before the event is applied."""
    probe = lifecycle._confirm_revoked

    def probe_then_reinstall(bitrix, member_id, pair):
        probe(bitrix, member_id, pair)
        monkeypatch.setattr(lifecycle, "_confirm_revoked", probe)
        before_reinstall()
        assert fake.install(portal).status_code == 200

    monkeypatch.setattr(lifecycle, "_confirm_revoked", probe_then_reinstall)


def uninstalled_without_event(fake, portal):
    """Bitrix24 removed the app; its ONAPPUNINSTALL is still on the way."""
    portal.bound_events.clear()
    fake.uninstall(portal)


def test_reinstall_while_the_uninstall_is_checked_is_not_wiped(fake, installed_portal, bitrix, app, monkeypatch):
    seed_portal_data(bitrix, installed_portal.member_id)
    application_token = installed_portal.application_token
    uninstalled_without_event(fake, installed_portal)
    reinstall_after_the_probe(monkeypatch, fake, installed_portal)

    response = uninstall_event(app, installed_portal, application_token)

    assert response.status_code == 409 and response.json()["error"] == "UNINSTALL_NOT_CONFIRMED"
    after = portal_data(bitrix, installed_portal.member_id)
    assert after["status"] == PortalStatus.ACTIVE and after["token"] is not None
    assert (after["editors"], after["databases"]) == ([5, 7], 1)
    assert bitrix.client(installed_portal.member_id).call("user.admin") is True


def test_duplicate_uninstall_does_not_wipe_a_reinstall_that_restarted_the_token_version(
        fake, installed_portal, bitrix, app, monkeypatch):
    seed_portal_data(bitrix, installed_portal.member_id)
    application_token = installed_portal.application_token
    uninstalled_without_event(fake, installed_portal)
    # The first copy of the event is applied (tokens deleted) while the second one is being checked.
    first_copy = lambda: uninstall_event(app, installed_portal, application_token, clean="0")  # noqa: E731
    reinstall_after_the_probe(monkeypatch, fake, installed_portal, before_reinstall=first_copy)

    response = uninstall_event(app, installed_portal, application_token, clean="1")

    assert response.status_code == 409
    after = portal_data(bitrix, installed_portal.member_id)
    assert after["token"][0] == 1  # the same version the second copy probed
    assert after["status"] == PortalStatus.ACTIVE and (after["editors"], after["databases"]) == ([5, 7], 1)


# --- ONAPPUPDATE without a refresh token -----------------------------------------------------------

def stored_refresh_token(bitrix, member_id):
    with bitrix.session_factory() as session:
        return bitrix.tokens.stored_refresh_token(portal_by_member_id(session, member_id))


def test_onappupdate_without_refresh_token_keeps_the_stored_one(fake, installed_portal, bitrix, app):
    fake.config.handlers_removed_before_update_event = True
    fake.config.update_event_refresh_token = False
    refresh_before = stored_refresh_token(bitrix, installed_portal.member_id)
    _, token_before, _ = load(bitrix, installed_portal.member_id)

    response = fake.update_app(installed_portal)

    assert response.status_code == 200, response.text
    [update_event] = [call for call in fake.app_calls if call.get("event") == "ONAPPUPDATE"]
    assert "auth[refresh_token]" not in update_event["form"]
    stored, token_after, history = load(bitrix, installed_portal.member_id)
    assert bitrix.tokens.application_token(stored) == installed_portal.application_token
    assert stored_refresh_token(bitrix, installed_portal.member_id) == refresh_before
    assert token_after.version > token_before.version and history[-1] == "update"
    assert fake.open_app(installed_portal).status_code == 200  # the new application token is the stored one
    fake.expire_access_tokens(installed_portal)
    assert bitrix.client(installed_portal.member_id).call("user.admin") is True  # the kept refresh token works
    assert fake.uninstall(installed_portal).status_code == 200


def test_onappupdate_without_refresh_token_still_needs_an_administrator(fake, installed_portal, bitrix):
    before = load(bitrix, installed_portal.member_id)
    user = installed_portal.add_user(name="Regular User", admin=False)
    response = fake.send_event(installed_portal, "ONAPPUPDATE", data={"VERSION": "2"}, auth_overrides={
        "application_token": "attacker-chosen", "refresh_token": None,
        "access_token": fake.issue_tokens(installed_portal, user)["access_token"],
    })

    assert response.status_code == 403 and response.json()["error"] == "NOT_ADMIN"
    after = load(bitrix, installed_portal.member_id)
    assert bitrix.tokens.application_token(after[0]) == installed_portal.application_token
    assert after[1].version == before[1].version


# --- issue 12: escaped event names in logs, verification budget per address -------------------------
# (kept apart from the uninstall tests above)

def test_a_newline_in_an_event_name_cannot_forge_a_log_line(app, caplog):
    import logging

    caplog.set_level(logging.WARNING)
    forged = "ONAPPUNINSTALL\nINFO Portal evil.example uninstalled cleanly"
    response = requests.post(f"{app.live_url}/events", data={
        "event": forged, "auth[member_id]": "unknown", "auth[application_token]": "x",
    }, timeout=10)

    assert response.status_code == 401
    [record] = [record for record in caplog.records if record.getMessage().startswith("Event ")]
    assert "\n" not in record.getMessage()
    assert "ONAPPUNINSTALL\\nINFO Portal evil.example" in record.getMessage()


def test_events_are_throttled_per_client_address_with_retry_after(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "VERIFY_RATE_PER_MINUTE", 2)

    def post_event(address):
        return client.post("/events", environ_base={"REMOTE_ADDR": address}, data={
            "event": "ONAPPUPDATE", "auth[member_id]": "unknown", "auth[application_token]": "x",
            "auth[access_token]": "forged", "auth[refresh_token]": "forged",
        })

    assert [post_event("203.0.113.5").status_code for _ in range(2)] == [401, 401]
    throttled = post_event("203.0.113.5")
    assert throttled.status_code == 429
    assert throttled.get_json()["error"] == "TOO_MANY_REQUESTS"
    assert "try again in" in throttled.get_json()["error_description"]
    assert int(throttled.headers["Retry-After"]) >= 1
    assert post_event("203.0.113.6").status_code == 401
