"""Random values, keyed hashes and the small symmetric encryption consentry needs.

Tokens, codes and client secrets are high-entropy random values, so a keyed SHA-256
(HMAC) is as strong as a slow password hash for them and costs microseconds (STYLE.md).
People's passwords are different: argon2id, in :mod:`consentry.web.passwords`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def new_token() -> str:
    """An opaque token or code: 160 random bits as 40 hex characters (the seed's format)."""
    return secrets.token_hex(20)


def new_secret() -> str:
    """A client secret or session id: 256 random bits."""
    return secrets.token_hex(32)


class Keyring:
    """Keys derived from the one ``SECRET_KEY``, one per purpose, so no two uses share a key."""

    def __init__(self, secret_key: str) -> None:
        root = secret_key.encode()
        self._hash_key = hmac.new(root, b"consentry/hash/v1", hashlib.sha256).digest()
        self._csrf_key = hmac.new(root, b"consentry/csrf/v1", hashlib.sha256).digest()
        self._retry_key = hmac.new(root, b"consentry/retry/v1", hashlib.sha256).digest()
        # HMAC-SHA256 (RFC 2104) with the key's inner and outer pads absorbed once: a hash
        # is then two copies of a hash state and three short updates (~1 µs), where
        # hmac.digest() re-derives the pads and looks the digest up by name on every call
        # (~6 µs; a bearer check hashes once, a token request three times).
        block = self._hash_key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def hash(self, value: str, kind: str) -> str:
        """The stored lookup key of a secret value; ``kind`` separates token kinds."""
        inner = self._inner.copy()
        inner.update(kind.encode() + b"\0" + value.encode("utf-8", "surrogatepass"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def csrf_token(self, session_id: str) -> str:
        return hmac.new(self._csrf_key, session_id.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, session_id: str, sent: str) -> bool:
        return hmac.compare_digest(self.csrf_token(session_id), sent)

    def _retry_aead(self, refresh_token: str) -> AESGCM:
        # The key needs the old refresh token's plaintext, which the database never holds.
        key = hmac.new(self._retry_key, refresh_token.encode(), hashlib.sha256).digest()
        return AESGCM(key)

    def seal_retry(self, refresh_token: str, payload: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._retry_aead(refresh_token).encrypt(nonce, payload, b"retry")

    def open_retry(self, refresh_token: str, blob: bytes) -> bytes:
        return self._retry_aead(refresh_token).decrypt(blob[:12], blob[12:], b"retry")


def equal(a: str, b: str) -> bool:
    """Constant-time comparison of two strings."""
    enc = "utf-8"
    return hmac.compare_digest(a.encode(enc, "surrogatepass"), b.encode(enc, "surrogatepass"))
