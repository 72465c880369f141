"""OAuth tokens at rest: sealed with AES-256-GCM, each ciphertext bound to its row. Pure.

The associated data names the row (`provider`, `channel`), so a ciphertext copied into another
row does not open: rows cannot be swapped. A sealed value is `v1` + a 12-byte random nonce + the
ciphertext with its tag. Without ENCRYPTION_KEY the daemon stores tokens only when
ALLOW_PLAINTEXT_TOKENS=1 says so on purpose; such rows carry the scheme `plaintext`.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vodarchiver.errors import PermanentError

SCHEME_AES = "aes-256-gcm"
SCHEME_PLAINTEXT = "plaintext"
_VERSION = b"v1"
_NONCE_BYTES = 12


class TokenSealError(PermanentError):
    """A stored token cannot be opened: wrong ENCRYPTION_KEY, a swapped row, or tampering."""


def parse_key(raw: str) -> bytes:
    """ENCRYPTION_KEY: base64 (standard or URL-safe) of exactly 32 bytes."""
    text = raw.strip()
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if "-" in text
                               or "_" in text else None, validate=True)  # fmt: skip
    except (binascii.Error, ValueError):
        raise ValueError("expected base64 of 32 random bytes (openssl rand -base64 32)") from None
    if len(key) != 32:
        raise ValueError(f"must decode to 32 bytes for AES-256, got {len(key)}")
    return key


def associated_data(provider: str, channel: str) -> bytes:
    """What binds a ciphertext to its row."""
    return f"vodarchiver/oauth_tokens/{provider}/{channel}".encode()


class TokenCipher:
    """Seals and opens token payloads; `key=None` means plaintext (allowed on purpose)."""

    def __init__(self, key: bytes | None) -> None:
        self._aead = AESGCM(key) if key is not None else None

    @property
    def scheme(self) -> str:
        """How this cipher stores values."""
        return SCHEME_AES if self._aead is not None else SCHEME_PLAINTEXT

    def seal(self, plaintext: bytes, *, provider: str, channel: str) -> bytes:
        """Encrypt (or, in plaintext mode, pass through) one payload for its row."""
        if self._aead is None:
            return plaintext
        nonce = os.urandom(_NONCE_BYTES)
        return (
            _VERSION
            + nonce
            + self._aead.encrypt(nonce, plaintext, associated_data(provider, channel))
        )

    def open(self, sealed: bytes, scheme: str, *, provider: str, channel: str) -> bytes:
        """The payload of a stored row; TokenSealError when it cannot be opened here."""
        if scheme == SCHEME_PLAINTEXT:
            return sealed
        if scheme != SCHEME_AES:
            raise TokenSealError(f"unknown token storage scheme {scheme!r}")
        if self._aead is None:
            raise TokenSealError(
                "the stored YouTube token is encrypted and ENCRYPTION_KEY is not set"
            )
        if not sealed.startswith(_VERSION) or len(sealed) < len(_VERSION) + _NONCE_BYTES + 16:
            raise TokenSealError("the stored token is not a sealed value")
        nonce = sealed[len(_VERSION) : len(_VERSION) + _NONCE_BYTES]
        body = sealed[len(_VERSION) + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, associated_data(provider, channel))
        except InvalidTag:
            raise TokenSealError(
                "the stored token does not open with ENCRYPTION_KEY for this row "
                "(another key, a row copied from elsewhere, or tampering)"
            ) from None
