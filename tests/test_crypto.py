"""Keyed hashes: the precomputed-pad HMAC is exactly HMAC-SHA256 (stored hashes stay valid)."""

from __future__ import annotations

import hashlib
import hmac

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
