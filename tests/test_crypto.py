import pytest

from bitrix_app.services.crypto import TokenCipher, TokenCipherError


def test_round_trip_and_ciphertext_hides_plaintext():
    cipher = TokenCipher([TokenCipher.generate_key()])
    secret = "access-token-1234567890"
    encrypted = cipher.encrypt(secret)
    assert secret not in encrypted
    assert cipher.decrypt(encrypted) == secret


def test_rotation_old_key_still_decrypts_and_rotate_moves_to_new_key():
    old, new = TokenCipher.generate_key(), TokenCipher.generate_key()
    encrypted_with_old = TokenCipher([old]).encrypt("value")
    rotated_cipher = TokenCipher([new, old])
    assert rotated_cipher.decrypt(encrypted_with_old) == "value"
    moved = rotated_cipher.rotate(encrypted_with_old)
    assert TokenCipher([new]).decrypt(moved) == "value"


def test_unknown_key_gives_clear_error_without_the_value():
    encrypted = TokenCipher([TokenCipher.generate_key()]).encrypt("the-secret")
    with pytest.raises(TokenCipherError) as excinfo:
        TokenCipher([TokenCipher.generate_key()]).decrypt(encrypted)
    assert "the-secret" not in str(excinfo.value)


@pytest.mark.parametrize("keys", [[], ["not-a-fernet-key"]])
def test_bad_key_configuration_is_refused(keys):
    with pytest.raises(TokenCipherError):
        TokenCipher(keys)
