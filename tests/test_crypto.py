"""Keyed hashes: the precomputed-pad HMAC is exactly HMAC-SHA256 (stored hashes stay valid);
access and refresh tokens and their located hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from hypothesis import given
from hypothesis import strategies as st

from consentry.crypto import Keyring


def reference(secret_key: str, value: str, kind: str) -> str:
    root = secret_key.encode()
    key = hmac.new(root, b"consentry/hash/v1", hashlib.sha256).digest()
    msg = kind.encode() + b"\0" + value.encode("utf-8", "surrogatepass")
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


@given(
    secret_key=st.text(min_size=1, max_size=200),
    value=st.text(max_size=600),
    kind=st.sampled_from(["access_token", "refresh_token", "code", "client_secret", "x"]),
)
def test_hash_is_hmac_sha256_under_the_derived_key(secret_key: str, value: str, kind: str) -> None:
    assert Keyring(secret_key).hash(value, kind) == reference(secret_key, value, kind)


def test_kinds_and_keys_separate_hashes() -> None:
    k = Keyring("a" * 64)
    assert k.hash("v", "access_token") != k.hash("v", "refresh_token")
    assert k.hash("v", "code") != Keyring("b" * 64).hash("v", "code")
    # repeated calls do not disturb the precomputed states
    assert k.hash("v", "code") == k.hash("v", "code") == reference("a" * 64, "v", "code")


# --- access and refresh tokens: located hashes ----------------------------------------------


def test_new_tokens_have_the_seeds_format_and_hash_both_ways() -> None:
    k = Keyring("a" * 64)
    tokens = {k.new_token() for _ in range(2000)}
    assert len(tokens) == 2000
    for t in tokens:
        assert len(t) == 40 and t == t.lower() and int(t, 16) >= 0
        stored, legacy = k.token_hashes(t, "access_token")
        assert len(stored) == 64 and int(stored, 16) >= 0
        # the legacy form is the plain HMAC; the stored one ends with its first 192 bits
        assert legacy == k.hash(t, "access_token") == reference("a" * 64, t, "access_token")
        assert stored[16:] == legacy[:48]
        assert stored == k.token_hash(t, "access_token")
        assert stored != k.token_hash(t, "refresh_token")


def test_minting_gives_the_hash_a_presented_token_is_looked_up_by() -> None:
    """``Keyring.mint`` makes the stored hash from the block before encrypting it; it is the
    one ``token_hash`` finds the token by, for each kind."""
    k = Keyring("a" * 64)
    for kind in ("access_token", "refresh_token"):
        for _ in range(500):
            token, stored = k.mint(kind)
            assert len(token) == 40 and int(token, 16) >= 0
            assert stored == k.token_hash(token, kind) == k.token_hashes(token, kind)[0]


def test_the_retry_key_is_hmac_sha256_of_the_spent_token() -> None:
    """The sealed retry pair opens with the key HMAC(retry key, token) — as sealed by the
    release before the precomputed pads — and with nothing else."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    k = Keyring("a" * 64)
    token = k.new_token()
    retry_key = hmac.new(b"a" * 64, b"consentry/retry/v1", hashlib.sha256).digest()
    key = hmac.new(retry_key, token.encode(), hashlib.sha256).digest()
    blob = k.seal_retry(token, b"pair")
    assert AESGCM(key).decrypt(blob[:12], blob[12:], b"retry") == b"pair"
    nonce = secrets.token_bytes(12)
    assert k.open_retry(token, nonce + AESGCM(key).encrypt(nonce, b"old", b"retry")) == b"old"
    try:
        k.open_retry(k.new_token(), blob)
    except InvalidTag:
        pass
    else:
        raise AssertionError("another token opened the sealed pair")


def test_stored_hashes_follow_the_order_tokens_were_issued_in() -> None:
    """The point of the format: consecutive tokens sit next to each other in the index."""
    k = Keyring("a" * 64)
    stored = []
    for _ in range(5):
        stored.append(k.token_hash(k.new_token(), "refresh_token"))
        time.sleep(0.003)
    prefixes = [s[:8] for s in stored]  # milliseconds (mod 2^32), big-endian hex
    assert prefixes == sorted(prefixes) and len(set(prefixes)) == 5
    # a random 40-hex value (not made by new_token) hashes deterministically but unordered
    r = secrets.token_hex(20)
    assert k.token_hashes(r, "access_token") == k.token_hashes(r, "access_token")


def test_the_stored_hash_depends_on_the_secret_key() -> None:
    a, b = Keyring("a" * 64), Keyring("b" * 64)
    t = a.new_token()
    assert a.token_hash(t, "access_token")[:16] != b.token_hash(t, "access_token")[:16]
    assert a.token_hash(t, "access_token")[16:] != b.token_hash(t, "access_token")[16:]


@given(value=st.text(max_size=80) | st.from_regex(r"[0-9a-fA-F ]{40}", fullmatch=True))
def test_any_presented_value_hashes_without_error_or_side_effect(value: str) -> None:
    """Odd values (not hex, spaces that ``bytes.fromhex`` skips, upper case, other lengths)
    give a hash that matches nothing issued, and leave the cipher contexts as they were."""
    k = _KEYS
    stored, legacy = k.token_hashes(value, "access_token")
    assert len(stored) == len(legacy) == 64
    assert legacy == k.hash(value, "access_token")
    assert k.token_hash(_TOKEN, "access_token") == _TOKEN_HASH
    assert k.new_token() != _TOKEN


_KEYS = Keyring("c" * 64)
_TOKEN = _KEYS.new_token()
_TOKEN_HASH = _KEYS.token_hash(_TOKEN, "access_token")


def test_each_thread_has_its_own_cipher_contexts() -> None:
    k = Keyring("d" * 64)
    t = k.new_token()
    want = k.token_hash(t, "refresh_token")
    seen: list[str] = []

    def work() -> None:
        for _ in range(2000):
            k.new_token()
            seen.append(k.token_hash(t, "refresh_token"))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert set(seen) == {want} and len(seen) == 8000


@given(st.text(max_size=60), st.text(max_size=60))
def test_a_fingerprint_tells_values_apart_under_a_key_of_its_own(a: str, b: str) -> None:
    """Keyring.fingerprint: the same value, the same 16 bytes; another value, others; and its
    key is the keyring's own random one, not derived from the secret key (so it never lines
    up with anything stored, or with another process's)."""
    one, two = Keyring("s" * 64), Keyring("s" * 64)
    assert one.fingerprint(a) == one.fingerprint(a) and len(one.fingerprint(a)) == 16
    assert (one.fingerprint(a) == one.fingerprint(b)) == (a == b)
    assert one.fingerprint(a) != two.fingerprint(a)
    assert one.fingerprint(a).hex() not in (one.hash(a, "access_token"), one.token_hash(a, "a"))
