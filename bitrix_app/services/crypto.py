"""Encryption at rest for tokens, with key rotation (Fernet via the cryptography package)."""
from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class TokenCipherError(Exception):
    pass


class TokenCipher:
    """The first key encrypts; every key decrypts, so old keys can be retired gradually."""

    def __init__(self, keys: list[str]):
        if not keys:
            raise TokenCipherError("TOKEN_ENCRYPTION_KEYS is empty: at least one Fernet key is required.")
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except ValueError:
            raise TokenCipherError(
                "TOKEN_ENCRYPTION_KEYS holds a value that is not a Fernet key "
                "(32 url-safe base64-encoded bytes)."
            ) from None

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise TokenCipherError("A stored token cannot be decrypted with the configured keys.") from None

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt with the current first key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise TokenCipherError("A stored token cannot be decrypted with the configured keys.") from None

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()
