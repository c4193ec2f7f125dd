"""Refresh-token theft and replay, scope escalation, revocation, expiry
(RFC 6819 §4.5, RFC 9700 §4.14, RFC 6749 §6, RFC 7009)."""

from __future__ import annotations

import time

import httpx

from tests.attacks.support import Client, Server, refresh, signup, token_pair


def test_replayed_rotated_refresh_token_after_the_grace_window_revokes_the_grant(
    strict: Server, strict_app: Client
) -> None:
    _email, b = signup(strict)
    stolen = token_pair(strict, strict_app, b)
    # The honest client rotates; the thief holds the old refresh token.
    honest = refresh(strict, strict_app, stolen["refresh_token"])
    assert honest.status_code == 200
    newer = honest.json()
    time.sleep(2.2)  # CONSENTRY_REFRESH_GRACE=1 on this server
    replay = refresh(strict, strict_app, stolen["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant", replay.text
    assert "access_token" not in replay.text
    # Reuse detection (RFC 9700 §4.14.2): the whole grant is gone, the honest pair too.
    assert strict.api("GET", "/v3/accounts", newer["access_token"]).status_code == 401
    assert refresh(strict, strict_app, newer["refresh_token"]).status_code == 400


def test_grace_window_forgives_only_the_immediate_predecessor(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    """Inside the window (10 s by default) a retry gets the *same* pair back, never a fresh
    one; an older token in the chain is reuse even inside the window."""
    _email, browser = victim
    first = token_pair(server, victim_app, browser)
    second = refresh(server, victim_app, first["refresh_token"]).json()
    retry = refresh(server, victim_app, first["refresh_token"])
    assert retry.status_code == 200
    assert retry.json()["refresh_token"] == second["refresh_token"]
    assert retry.json()["access_token"] == second["access_token"]
    third = refresh(server, victim_app, second["refresh_token"]).json()
    older = refresh(server, victim_app, first["refresh_token"])
    assert older.status_code == 400, older.text
    assert server.api("GET", "/v3/accounts", third["access_token"]).status_code == 401


def test_stolen_refresh_token_is_useless_to_another_client(
    server: Server, victim_app: Client, attacker_app: Client, victim: tuple
) -> None:
    _email, browser = victim
    pair = token_pair(server, victim_app, browser)
    r = refresh(server, attacker_app, pair["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert "access_token" not in r.text
    # Nor did the attempt revoke or burn anything of the victim's.
    assert refresh(server, victim_app, pair["refresh_token"]).status_code == 200


def test_refresh_cannot_widen_the_scope(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    _email, browser = victim
    pair = token_pair(server, victim_app, browser, scope="account.read")
    for wider in ("account.read from-fields.write", "from-fields.read", "admin"):
        r = refresh(server, victim_app, pair["refresh_token"], scope=wider)
        assert r.status_code == 400 and r.json()["error"] == "invalid_scope", (wider, r.text)
    # Asking for nothing keeps the granted scope, never "whole account" (null).
    same = refresh(server, victim_app, pair["refresh_token"])
    assert same.status_code == 200 and same.json()["scope"] == "account.read"
    token = same.json()["access_token"]
    assert server.api("GET", "/v3/from-fields", token).status_code == 403


def test_revoked_refresh_token_takes_its_access_tokens_with_it(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    _email, browser = victim
    pair = token_pair(server, victim_app, browser)
    r = httpx.post(
        f"{server.url}/v3/token/revoke", auth=victim_app.auth,
        data={"token": pair["refresh_token"], "token_type_hint": "refresh_token"},
    )
    assert r.status_code == 200
    assert refresh(server, victim_app, pair["refresh_token"]).status_code == 400
    assert server.api("GET", "/v3/accounts", pair["access_token"]).status_code == 401


def test_expired_access_and_refresh_tokens_are_refused(lab: Server, lab_app: Client) -> None:
    _email, b = signup(lab)
    pair = token_pair(lab, lab_app, b)
    time.sleep(2.1)  # access tokens live 1 s here
    r = lab.api("GET", "/v3/accounts", pair["access_token"])
    assert r.status_code == 401 and r.json()["message"] == "The access token provided is expired"
    time.sleep(1.6)  # refresh tokens live 3 s here
    late = refresh(lab, lab_app, pair["refresh_token"])
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant", late.text
