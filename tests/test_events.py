"""POST /events: form-encoded Bitrix24 app events, delivered by the fake portal over real HTTP."""
import requests
from sqlalchemy import select

from bitrix_app.models import Portal, PortalHistory, PortalStatus, PortalToken
from bitrix_app.services.errors import PortalUnavailable


def load(bitrix, member_id):
    with bitrix.session_factory() as session:
        portal = session.scalars(select(Portal).where(Portal.member_id == member_id)).one()
        token = session.scalars(select(PortalToken).where(PortalToken.portal_id == portal.id)).first()
        history = list(session.scalars(select(PortalHistory.kind).where(PortalHistory.member_id == member_id)))
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
