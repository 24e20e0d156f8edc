"""Signed, short-lived session tokens for the tab's API, and the server-side re-seed grants."""
from __future__ import annotations

import base64
import json

import pytest

from bitrix_app.services.session_tokens import (
    GRANT_SECONDS, RENEWAL_GRACE, ReseedGrant, ReseedGrants, SessionTokenError, SessionTokens, TabSession,
)

AUDIENCE = "app.test.client"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(keys=("secret-one",), ttl: int = 600, clock=None, audience: str = AUDIENCE) -> SessionTokens:
    return SessionTokens(list(keys), ttl, audience, **({"clock": clock} if clock else {}))


SESSION = TabSession(member_id="m-1", user_id=7, is_admin=False, can_edit=True, lang="ru", generation=3)


def payload_of(token: str) -> dict:
    data = token.split(".", 1)[0]
    return json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))


def test_round_trip():
    tokens = make()
    assert tokens.read(tokens.issue(SESSION)) == SESSION


def test_the_audience_portal_and_install_generation_are_signed_claims():
    assert {key: payload_of(make().issue(SESSION))[key] for key in ("aud", "m", "n")} == {
        "aud": AUDIENCE, "m": "m-1", "n": 3}


def test_a_token_for_another_audience_is_refused():
    with pytest.raises(SessionTokenError) as caught:
        make().read(make(audience="another.app").issue(SESSION))
    assert caught.value.code == "SESSION_INVALID"


def test_expired_tokens_are_refused():
    clock = Clock()
    tokens = make(ttl=60, clock=clock)
    token = tokens.issue(SESSION)
    clock.now += 59
    assert tokens.read(token) == SESSION
    clock.now += 2
    with pytest.raises(SessionTokenError) as caught:
        tokens.read(token)
    assert caught.value.code == "SESSION_EXPIRED"


def test_an_expired_token_can_still_be_renewed_for_a_while():
    clock = Clock()
    tokens = make(ttl=60, clock=clock)
    token = tokens.issue(SESSION)
    clock.now += 60 + RENEWAL_GRACE - 1
    assert tokens.read(token, renewing=True) == SESSION
    clock.now += 2
    with pytest.raises(SessionTokenError) as caught:
        tokens.read(token, renewing=True)
    assert caught.value.code == "SESSION_EXPIRED"


@pytest.mark.parametrize("mangle", [
    lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # signature
    lambda token: "x" + token,                                             # payload
    lambda token: "",
    lambda token: "not-a-token",
    lambda token: token.replace(".", "", 1),
])
def test_tampered_tokens_are_refused(mangle):
    tokens = make()
    with pytest.raises(SessionTokenError) as caught:
        tokens.read(mangle(tokens.issue(SESSION)))
    assert caught.value.code == "SESSION_INVALID"


def test_a_token_signed_with_another_secret_is_refused():
    with pytest.raises(SessionTokenError):
        make(["secret-two"]).read(make(["secret-one"]).issue(SESSION))


def test_the_first_key_signs_and_every_key_verifies():
    old, new = "old-secret-key", "new-secret-key"
    before_rotation = make([old]).issue(SESSION)
    rotating = make([new, old])
    assert rotating.read(before_rotation) == SESSION
    after_rotation = rotating.issue(SESSION)
    assert make([new]).read(after_rotation) == SESSION
    with pytest.raises(SessionTokenError):
        make([old]).read(after_rotation)


def test_escalating_privileges_in_the_payload_breaks_the_signature():
    token = make().issue(SESSION)
    data, rest = payload_of(token), token.split(".", 1)[1]
    data["a"] = True
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=") + "." + rest
    with pytest.raises(SessionTokenError):
        make().read(forged)


@pytest.mark.parametrize("keys", [[], [""]])
def test_a_secret_key_is_required(keys):
    with pytest.raises(ValueError):
        SessionTokens(keys, 60, AUDIENCE)


# --- re-seed grants: server-side, short-lived, single use ----------------------------------------

GRANT = ReseedGrant("ACCESS-TOKEN-VALUE", "REFRESH-TOKEN-VALUE", 3600)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def grants(bitrix, clock):
    return ReseedGrants(bitrix.session_factory, bitrix.tokens.cipher, clock)


def test_a_grant_is_used_once_and_the_browser_sees_only_a_handle(grants, installed_portal):
    handle = grants.keep(installed_portal.member_id, 1, GRANT)
    assert "ACCESS" not in handle and "REFRESH" not in handle
    assert grants.take(handle, installed_portal.member_id, 1) == GRANT
    assert grants.take(handle, installed_portal.member_id, 1) is None
    assert "ACCESS" not in repr(GRANT)


def test_a_grant_is_encrypted_at_rest(grants, installed_portal, bitrix):
    from bitrix_app.models import ReseedGrantRecord

    grants.keep(installed_portal.member_id, 1, GRANT)
    with bitrix.session_factory() as db:
        stored = db.query(ReseedGrantRecord).one().authorization_encrypted
    assert "ACCESS-TOKEN-VALUE" not in stored and "REFRESH-TOKEN-VALUE" not in stored


def test_a_grant_expires_in_minutes(grants, clock, installed_portal):
    handle = grants.keep(installed_portal.member_id, 1, GRANT)
    clock.now += GRANT_SECONDS
    assert grants.take(handle, installed_portal.member_id, 1) is None


def test_a_grant_belongs_to_its_user_and_portal(grants, installed_portal, fake):
    other = fake.add_portal(domain="beta.bitrix24.test")
    fake.install(other)
    handle = grants.keep(installed_portal.member_id, 1, GRANT)
    assert grants.take(handle, installed_portal.member_id, 2) is None
    assert grants.take(handle, other.member_id, 1) is None
    assert grants.take(handle, installed_portal.member_id, 1) == GRANT


def test_expired_grants_are_purged_when_a_new_one_is_kept(grants, clock, installed_portal, bitrix):
    from bitrix_app.models import ReseedGrantRecord

    grants.keep(installed_portal.member_id, 1, GRANT)
    clock.now += GRANT_SECONDS
    grants.keep(installed_portal.member_id, 1, GRANT)
    with bitrix.session_factory() as db:
        assert db.query(ReseedGrantRecord).count() == 1
