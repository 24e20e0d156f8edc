"""Token storage and the single-flight refresh (threads in one process; see
test_refresh_race.py for several processes)."""
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, select, update

from bitrix_app.models import Portal, PortalHistory, PortalStatus, PortalToken
from bitrix_app.sandbox.fake.tokens import revoke_app_tokens
from bitrix_app.services.bitrix import Bitrix
from bitrix_app.services.database import make_engine, make_session_factory
from bitrix_app.services.errors import OAuthError, PortalUnavailable
from bitrix_app.services.tokens import AmbiguousPortal, find_portal


def history(bitrix, member_id):
    with bitrix.session_factory() as session:
        return list(session.scalars(select(PortalHistory.kind).where(PortalHistory.member_id == member_id)
                                    .order_by(PortalHistory.id)))  # PostgreSQL gives no order without one


def portal_status(bitrix, member_id):
    with bitrix.session_factory() as session:
        return session.scalar(select(Portal.status).where(Portal.member_id == member_id))


def test_refresh_skips_when_another_worker_already_refreshed(fake, installed_portal, bitrix):
    member_id = installed_portal.member_id
    stale = bitrix.tokens.current(member_id)

    first = bitrix.tokens.refresh(member_id, stale.version, bitrix.oauth.refresh)
    second = bitrix.tokens.refresh(member_id, stale.version, bitrix.oauth.refresh)

    assert fake.refresh_count(installed_portal) == 1
    assert first.version == second.version == stale.version + 1
    assert first.value == second.value != stale.value
    assert history(bitrix, member_id).count("refresh") == 1


def test_concurrent_threads_refresh_exactly_once(fake, installed_portal, bitrix):
    fake.config.refresh_latency = 0.2  # widen the race window
    fake.expire_access_tokens(installed_portal)
    client = bitrix.client(installed_portal.member_id)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: client.call("user.admin"), range(16)))

    assert results == [True] * 16
    assert fake.refresh_count(installed_portal) == 1


def test_spent_refresh_token_marks_portal_needs_reauth(fake, installed_portal, bitrix):
    member_id = installed_portal.member_id
    bitrix.oauth.refresh(bitrix.tokens.refresh_token(member_id))  # someone else spent it
    stale = bitrix.tokens.current(member_id)

    with pytest.raises(OAuthError) as excinfo:
        bitrix.tokens.refresh(member_id, stale.version, bitrix.oauth.refresh)

    assert excinfo.value.code == "invalid_grant"
    assert portal_status(bitrix, member_id) == PortalStatus.NEEDS_REAUTH
    assert history(bitrix, member_id)[-1] == "refresh_failed"
    with pytest.raises(PortalUnavailable) as unavailable:
        bitrix.tokens.current(member_id)
    assert unavailable.value.code == "PORTAL_NEEDS_REAUTH"
    with bitrix.session_factory() as session:  # kept, visible, not deleted
        assert session.scalar(select(PortalToken).join(Portal).where(Portal.member_id == member_id)) is not None


def test_payment_required_is_recorded(fake, installed_portal, bitrix):
    installed_portal.payment_required = True
    stale = bitrix.tokens.current(installed_portal.member_id)
    with pytest.raises(OAuthError):
        bitrix.tokens.refresh(installed_portal.member_id, stale.version, bitrix.oauth.refresh)
    assert portal_status(bitrix, installed_portal.member_id) == PortalStatus.PAYMENT_REQUIRED
    assert history(bitrix, installed_portal.member_id)[-1] == "refresh_failed"


def test_refresh_whatever_the_status_tries_a_payment_required_portal(fake, installed_portal, bitrix):
    member_id = installed_portal.member_id
    installed_portal.payment_required = True
    stale = bitrix.tokens.current(member_id)
    with pytest.raises(OAuthError):
        bitrix.tokens.refresh(member_id, stale.version, bitrix.oauth.refresh)
    installed_portal.payment_required = False  # paid since
    with pytest.raises(PortalUnavailable):
        bitrix.tokens.refresh(member_id, stale.version, bitrix.oauth.refresh)

    fresh = bitrix.tokens.refresh(member_id, stale.version, bitrix.oauth.refresh, whatever_the_status=True)

    assert fresh.version == stale.version + 1
    assert portal_status(bitrix, member_id) == PortalStatus.ACTIVE  # a pair that refreshes works again


def test_refresh_reply_without_expires_and_user_id_is_stored(fake, installed_portal, bitrix):
    fake.config.token_response_legacy = True
    member_id = installed_portal.member_id
    stale = bitrix.tokens.current(member_id)

    fresh = bitrix.tokens.refresh(member_id, stale.version, bitrix.oauth.refresh)

    assert fresh.expires_at > datetime.now(timezone.utc) + timedelta(minutes=50)
    assert bitrix.client(member_id).call("user.admin") is True
    with bitrix.session_factory() as session:
        assert session.scalar(select(PortalToken.user_id)) == installed_portal.admin.id


def test_refresh_over_post_when_configured(fake, installed_portal, bitrix):
    from dataclasses import replace

    original = bitrix.oauth.settings
    bitrix.oauth.settings = replace(original, token_method="POST")
    try:
        stale = bitrix.tokens.current(installed_portal.member_id)
        bitrix.tokens.refresh(installed_portal.member_id, stale.version, bitrix.oauth.refresh)
    finally:
        bitrix.oauth.settings = original
    assert fake.refresh_count(installed_portal) == 1


def another_process(bitrix) -> Bitrix:
    """A second `Bitrix` on the same database, with its own memory: another worker process."""
    return Bitrix(bitrix.settings, make_session_factory(make_engine(str(bitrix.session_factory.kw["bind"].url))))


def test_stored_expiry_in_the_past_refreshes_before_calling(fake, installed_portal, bitrix):
    with bitrix.session_factory() as session, session.begin():
        session.execute(update(PortalToken).values(expires_at=datetime.now(timezone.utc) - timedelta(minutes=1)))

    assert another_process(bitrix).client(installed_portal.member_id).call("user.admin") is True
    assert fake.refresh_count(installed_portal) == 1


class TokenQueries:
    """Counts the SQL statements that read or write the token table (`count`), and all (`statements`)."""

    def __init__(self, bitrix):
        self.engine = bitrix.session_factory.kw["bind"]
        self.count = 0
        self.statements = 0
        event.listen(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, _connection, _cursor, statement, *_args):
        self.count += "portal_tokens" in statement
        self.statements += 1

    def close(self):
        event.remove(self.engine, "before_cursor_execute", self._seen)


@pytest.fixture
def token_queries(bitrix):
    queries = TokenQueries(bitrix)
    yield queries
    queries.close()


def test_calls_use_the_token_in_memory_without_reading_the_database(fake, installed_portal, bitrix, token_queries):
    client = bitrix.client(installed_portal.member_id)
    client.call("user.admin")
    token_queries.statements = 0

    assert [client.call("user.admin") for _ in range(5)] == [True] * 5
    assert token_queries.statements == 0

    # A new client reads the portal row, its token in the same query, and nothing more.
    assert bitrix.client(installed_portal.member_id).call("user.admin") is True
    assert token_queries.statements == 1


def test_a_client_sends_the_token_read_with_its_portal_row(fake, installed_portal, bitrix, token_queries):
    bitrix.tokens.forget(installed_portal.member_id)  # nothing in memory: the row's token is taken
    other = another_process(bitrix)
    stale = other.tokens.current(installed_portal.member_id)
    other.tokens.refresh(installed_portal.member_id, stale.version, other.oauth.refresh)
    token_queries.statements = 0

    assert bitrix.client(installed_portal.member_id).call("user.admin") is True  # the refreshed token, read now
    assert token_queries.statements == 1 and fake.refresh_count(installed_portal) == 1


def test_the_tokens_kept_in_memory_are_the_most_recently_used_ones(fake, bitrix):
    portals = []
    for n in range(3):
        portal = fake.add_portal(domain=f"lru{n}.bitrix24.test")
        fake.install(portal)
        fake.finish_install(portal)
        portals.append(portal)
    bitrix.tokens.max_remembered = 2

    for portal in (portals[0], portals[1], portals[0], portals[2]):
        bitrix.tokens.current(portal.member_id)

    assert list(bitrix.tokens._remembered) == [portals[0].member_id, portals[2].member_id]


def test_a_remembered_token_near_its_expiry_is_read_again(fake, installed_portal, bitrix, token_queries):
    client = bitrix.client(installed_portal.member_id)
    client.call("user.admin")
    token = bitrix.tokens.current(installed_portal.member_id)
    token_queries.count = 0
    bitrix.tokens.clock = lambda: token.expires_at - timedelta(seconds=10)  # inside the leeway

    assert client.call("user.admin") is True
    assert token_queries.count >= 1 and fake.refresh_count(installed_portal) == 0


def test_a_token_another_process_refreshed_is_picked_up_by_the_next_call(fake, installed_portal, bitrix):
    member_id = installed_portal.member_id
    client = bitrix.client(member_id)
    assert client.call("user.admin") is True  # this process now holds version 1 in memory
    other = another_process(bitrix)
    stale = other.tokens.current(member_id)
    fresh = other.tokens.refresh(member_id, stale.version, other.oauth.refresh)  # the fake rotates version 1 away

    assert client.call("user.admin") is True
    assert fake.refresh_count(installed_portal) == 1  # picked up, not refreshed a second time
    assert bitrix.tokens.remembered(member_id).value == fresh.value


def test_a_new_pair_at_the_same_version_is_not_mistaken_for_the_remembered_token(fake, installed_portal, bitrix):
    member_id = installed_portal.member_id
    client = bitrix.client(member_id)
    assert client.call("user.admin") is True
    revoke_app_tokens(fake.state, installed_portal, bitrix.settings.client_id)  # the remembered token is dead
    reply = fake.issue_tokens(installed_portal)  # stored elsewhere at the same version (a reinstall restarts at 1)
    cipher = bitrix.tokens.cipher
    with bitrix.session_factory() as session, session.begin():
        session.execute(update(PortalToken).values(access_token_encrypted=cipher.encrypt(reply["access_token"]),
                                                   refresh_token_encrypted=cipher.encrypt(reply["refresh_token"])))

    assert client.call("user.admin") is True
    assert bitrix.tokens.remembered(member_id).value == reply["access_token"]


def test_a_token_read_before_another_threads_refresh_does_not_replace_the_newer_one(fake, installed_portal, bitrix):
    member_id = installed_portal.member_id
    with bitrix.session_factory() as session:  # a slow reader holds the row as it was before the refresh
        stale_row = session.scalars(select(PortalToken)).one()
        session.expunge(stale_row)
    fresh = bitrix.tokens.refresh(member_id, stale_row.version, bitrix.oauth.refresh)

    bitrix.tokens._remember(member_id, stale_row)  # the slow reader finishes

    assert bitrix.tokens.remembered(member_id).value == fresh.value


# --- looking a portal up by domain (issue 7) ---------------------------------------------------------

def add_portal_row(bitrix, member_id: str, domain: str) -> None:
    with bitrix.session_factory() as session, session.begin():
        session.add(Portal(member_id=member_id, domain=domain, client_endpoint=f"https://{domain}/rest/",
                           server_endpoint="https://oauth.example/rest/", editor_user_ids=[]))


def test_a_domain_two_portals_share_is_refused_naming_both(bitrix):
    add_portal_row(bitrix, "member-b", "shared.bitrix24.test")
    add_portal_row(bitrix, "member-a", "shared.bitrix24.test")

    with bitrix.session_factory() as session:
        with pytest.raises(AmbiguousPortal) as excinfo:
            find_portal(session, "shared.bitrix24.test")
        assert find_portal(session, "member-b").member_id == "member-b"

    assert excinfo.value.code == "PORTAL_AMBIGUOUS" and excinfo.value.member_ids == ("member-a", "member-b")
    assert "member-a, member-b" in excinfo.value.description
    with pytest.raises(PortalUnavailable, match="member-a, member-b"):
        bitrix.portal("shared.bitrix24.test")


def test_a_domain_of_one_portal_still_finds_it(bitrix):
    add_portal_row(bitrix, "member-a", "one.bitrix24.test")
    with bitrix.session_factory() as session:
        assert find_portal(session, "one.bitrix24.test").member_id == "member-a"
        assert find_portal(session, "two.bitrix24.test") is None
