"""Signed, short-lived session tokens for the tab's API, and the encrypted re-seed grant."""
from __future__ import annotations

import pytest

from bitrix_app.services.crypto import TokenCipher
from bitrix_app.services.session_tokens import SessionTokenError, SessionTokens, TabSession

KEY = TokenCipher.generate_key()


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(secret: str = "secret-one", ttl: int = 3600, clock=None) -> SessionTokens:
    return SessionTokens(secret, ttl, TokenCipher([KEY]), **({"clock": clock} if clock else {}))


SESSION = TabSession(member_id="m-1", user_id=7, is_admin=False, can_edit=True, lang="ru")


def test_round_trip():
    tokens = make()
    assert tokens.read(tokens.issue(SESSION)) == SESSION


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
        make("secret-two").read(make("secret-one").issue(SESSION))


def test_escalating_privileges_in_the_payload_breaks_the_signature():
    import base64
    import json

    token = make().issue(SESSION)
    payload, rest = token.split(".", 1)
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["a"] = True
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=") + "." + rest
    with pytest.raises(SessionTokenError):
        make().read(forged)


def test_the_reseed_grant_is_encrypted_not_just_signed():
    tokens = make()
    grant = tokens.seal_grant("ACCESS-TOKEN-VALUE", "REFRESH-TOKEN-VALUE", 3600)
    token = tokens.issue(TabSession("m-1", 1, True, True, "en", grant))
    assert "ACCESS-TOKEN-VALUE" not in token and "REFRESH-TOKEN-VALUE" not in token
    opened = tokens.open_grant(tokens.read(token).reseed_grant)
    assert (opened.access_token, opened.refresh_token, opened.expires_in) == ("ACCESS-TOKEN-VALUE", "REFRESH-TOKEN-VALUE", 3600)
    assert "ACCESS" not in repr(opened)


def test_a_grant_sealed_with_other_keys_cannot_be_opened():
    sealed = SessionTokens("s", 60, TokenCipher([TokenCipher.generate_key()])).seal_grant("a", "r", 1)
    with pytest.raises(SessionTokenError):
        make().open_grant(sealed)


def test_a_secret_key_is_required():
    with pytest.raises(ValueError):
        SessionTokens("", 60, TokenCipher([KEY]))
