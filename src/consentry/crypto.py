"""Random values, keyed hashes and the small symmetric encryption consentry needs.

Tokens, codes and client secrets are high-entropy random values, so a keyed SHA-256
(HMAC) is as strong as a slow password hash for them and costs microseconds (STYLE.md).
People's passwords are different: argon2id, in :mod:`consentry.web.passwords`.

Access and refresh tokens are made so that the database can store them in issue order
(``Keyring.mint``): a random token's hash lands on a random page of its table's index,
and each such page is a separate write to the WAL and again to the database file — about
half the disk work of a token request. Each token is AES (a keyed permutation of 128-bit
blocks) of a block that starts with the time in milliseconds, plus 32 more random bits:
to anyone without the key it is 160 uniformly random bits (the SPEC's entropy, RFC 6749
§10.10's 2^-160 for a guess), and 128 of its bits are random even to the key's holder.
The stored hash starts with 16 hex of the decrypted block (the time and 32 random bits,
never enough to rebuild the token) and goes on with the token's HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# A stored token hash: 16 hex of the token's decrypted block (where the index puts it), then
# the first 48 hex (192 bits) of its HMAC. 64 characters, as the full HMAC was.
_LOCATOR_HEX = 16


def new_token() -> str:
    """A code or a pending request's id: 160 random bits as 40 hex characters (the seed's
    format). Access and refresh tokens come from ``Keyring.mint``."""
    return secrets.token_hex(20)


def new_secret() -> str:
    """A client secret or session id: 256 random bits."""
    return secrets.token_hex(32)


def _pads(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """HMAC-SHA256 (RFC 2104) with the key's inner and outer pads absorbed once: an HMAC is
    then two copies of a hash state and short updates (~1 µs), where hmac.digest()
    re-derives the pads and looks the digest up by name on every call (~3-6 µs; a token
    request computes several)."""
    block = key.ljust(64, b"\0")
    return hashlib.sha256(bytes(b ^ 0x36 for b in block)), hashlib.sha256(
        bytes(b ^ 0x5C for b in block)
    )


class Keyring:
    """Keys derived from the one ``SECRET_KEY``, one per purpose, so no two uses share a key."""

    def __init__(self, secret_key: str) -> None:
        root = secret_key.encode()
        self._hash_key = hmac.new(root, b"consentry/hash/v1", hashlib.sha256).digest()
        self._csrf_key = hmac.new(root, b"consentry/csrf/v1", hashlib.sha256).digest()
        self._inner, self._outer = _pads(self._hash_key)
        self._retry_inner, self._retry_outer = _pads(
            hmac.new(root, b"consentry/retry/v1", hashlib.sha256).digest()
        )
        locate_key = hmac.new(root, b"consentry/locate/v1", hashlib.sha256).digest()[:16]
        # ECB on one 16-byte block is AES itself, the keyed permutation: nothing chains.
        self._locate = Cipher(algorithms.AES(locate_key), modes.ECB())  # noqa: S305
        self._contexts = threading.local()
        # A key of this process alone, made at start and never stored: fingerprint()'s.
        self._fingerprint = hashlib.blake2s(key=os.urandom(32), digest_size=16)

    def _ecb(self) -> tuple[CipherContext, CipherContext]:
        # One (encryptor, decryptor) per thread: ECB on whole blocks keeps no state between
        # calls, so a context is reused (0.1 µs against 1.9 µs for a new one) but never shared.
        pair: tuple[CipherContext, CipherContext] | None = getattr(self._contexts, "pair", None)
        if pair is None:
            pair = self._contexts.pair = (self._locate.encryptor(), self._locate.decryptor())
        return pair

    def _located(self) -> tuple[bytes, str]:
        """(the block, the token): AES of the block, then 32 more random bits, in hex."""
        r = os.urandom(16)
        block = (time.time_ns() // 1_000_000 & 0xFFFFFFFF).to_bytes(4, "big") + r[:12]
        return block, (self._ecb()[0].update(block) + r[12:]).hex()

    def new_token(self) -> str:
        """A new access or refresh token: 40 hex characters (the seed's format), stored near
        the tokens issued around the same millisecond (see the module's docstring)."""
        return self._located()[1]

    def mint(self, kind: str) -> tuple[str, str]:
        """A new access or refresh token (``new_token``) and its stored key (``token_hash``),
        made from the block before it was encrypted instead of decrypting it again."""
        block, token = self._located()
        return token, block[: _LOCATOR_HEX // 2].hex() + self.hash(token, kind)[:48]

    def token_hash(self, value: str, kind: str) -> str:
        """The stored key of an access or refresh token (what ``mint`` gives with it)."""
        return self.token_hashes(value, kind)[0]

    def token_hashes(self, value: str, kind: str) -> tuple[str, str]:
        """(the stored key, the key of a token stored before keys were located): a presented
        token may be either; reads try the first, then the second (``hot.located_first``)."""
        digest = self.hash(value, kind)
        try:
            raw = bytes.fromhex(value[:32]) if len(value) == 40 else b""
        except ValueError:
            raw = b""
        # Not a token we issued (found by neither). fromhex skips spaces, so the length is
        # checked on the bytes: a partial block would stay in the context.
        if len(raw) != 16:
            return digest, digest
        return self._ecb()[1].update(raw)[: _LOCATOR_HEX // 2].hex() + digest[:48], digest

    def hash(self, value: str, kind: str) -> str:
        """The stored lookup key of a secret value; ``kind`` separates token kinds."""
        inner = self._inner.copy()
        inner.update(kind.encode() + b"\0" + value.encode("utf-8", "surrogatepass"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def fingerprint(self, value: str) -> bytes:
        """A 128-bit MAC (keyed BLAKE2s) of ``value`` under this process's own random key:
        to tell one token from another in memory (the bearer GET's kept reads are indexed
        by it) without keeping the token itself, and for less than its stored hash (~0.5
        µs against ~2: no AES block, one short hash). Not stable across processes or
        restarts, so never to be stored; two values share one with probability 2^-128."""
        h = self._fingerprint.copy()
        h.update(value.encode("utf-8", "surrogatepass"))
        return h.digest()

    def csrf_token(self, session_id: str) -> str:
        return hmac.new(self._csrf_key, session_id.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, session_id: str, sent: str) -> bool:
        return hmac.compare_digest(self.csrf_token(session_id), sent)

    def _retry_aead(self, refresh_token: str) -> AESGCM:
        # The key needs the old refresh token's plaintext, which the database never holds.
        inner = self._retry_inner.copy()
        inner.update(refresh_token.encode("utf-8", "surrogatepass"))
        outer = self._retry_outer.copy()
        outer.update(inner.digest())
        return AESGCM(outer.digest())

    def seal_retry(self, refresh_token: str, payload: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._retry_aead(refresh_token).encrypt(nonce, payload, b"retry")

    def open_retry(self, refresh_token: str, blob: bytes) -> bytes:
        return self._retry_aead(refresh_token).decrypt(blob[:12], blob[12:], b"retry")


def equal(a: str, b: str) -> bool:
    """Constant-time comparison of two strings."""
    enc = "utf-8"
    return hmac.compare_digest(a.encode(enc, "surrogatepass"), b.encode(enc, "surrogatepass"))
