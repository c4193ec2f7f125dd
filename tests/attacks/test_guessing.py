"""Guessing codes, tokens and client secrets (RFC 6819 §4.4.1.3, §4.5.3, §4.6.3, §5.1.4.2.2)."""

from __future__ import annotations

import re
import secrets

import httpx

from tests.attacks.support import (
    Client,
    Server,
    code_for,
    exchange,
    from_address,
    refresh,
    token_pair,
)

HEX40 = re.compile(r"[0-9a-f]{40}")
HEX64 = re.compile(r"[0-9a-f]{64}")


def assert_unpredictable(values: list[str]) -> None:
    """Every 32-bit slice of every value is unique: repeated or fixed parts (a counter, a
    timestamp, a short random value padded out) show up as repeats."""
    chunks = [v[i : i + 8] for v in values for i in range(0, len(v) - 7, 8)]
    assert len(set(values)) == len(values)
    assert len(set(chunks)) == len(chunks), "repeated 32-bit slices: low entropy"


def test_codes_and_tokens_are_unguessable(
    server: Server, victim_app: Client, shared_victim: tuple
) -> None:
    _email, browser = shared_victim
    codes = [code_for(browser, victim_app) for _ in range(4)]
    pair = exchange(server, victim_app, codes[0]).json()
    tokens = [pair["access_token"], pair["refresh_token"]]
    for _ in range(8):
        pair = refresh(server, victim_app, pair["refresh_token"]).json()
        tokens += [pair["access_token"], pair["refresh_token"]]
    for value in codes + tokens:
        assert HEX40.fullmatch(value), value  # 160 bits (SPEC §1.2)
    assert_unpredictable(codes + tokens)
    # And guessing online gets nowhere.
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for _ in range(100):
            guess = secrets.token_hex(20)
            r = c.get("/v3/accounts", headers={"Authorization": f"Bearer {guess}"})
            assert r.status_code == 401
        for _ in range(30):
            r = exchange(server, victim_app, secrets.token_hex(20))
            assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
            r = refresh(server, victim_app, secrets.token_hex(20))
            assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_client_secret_brute_force_gets_nowhere(
    server: Server, victim_app: Client, attacker_app: Client, shared_victim: tuple
) -> None:
    secrets_seen = [victim_app.client_secret, attacker_app.client_secret]
    for value in secrets_seen:
        assert HEX64.fullmatch(value), "client secrets carry 256 bits"
    assert_unpredictable(secrets_seen)
    form = {"grant_type": "client_credentials"}
    statuses = []
    with from_address(server, "127.0.0.4") as mallory:
        for _ in range(40):
            guess = (victim_app.client_id, secrets.token_hex(32))
            statuses.append(mallory.post("/v3/token", auth=guess, data=form).status_code)
        # Throttled per client id and address (RFC 6819 §5.1.4.2.3): even the right secret.
        right = mallory.post("/v3/token", auth=victim_app.auth, data=form)
    assert set(statuses) <= {401, 429} and statuses[0] == 401
    assert statuses[-10:] == [429] * 10, statuses
    assert right.status_code == 429
    # No lock-out of the real client, which calls from its own address.
    _email, browser = shared_victim
    assert token_pair(server, victim_app, browser)["access_token"]
