"""Attacks on the authorization code: interception, replay, PKCE stripping and downgrade,
redirect_uri substitution, expiry (RFC 6819 §4.4.1, RFC 9700 §2.1.1, §4.5, §4.8)."""

from __future__ import annotations

import time

from tests.attacks.support import (
    Client,
    Server,
    authorize,
    code_for,
    exchange,
    pkce_pair,
    redirect_params,
    signup,
)

CALLBACK = "https://mytemplatemaker.example.com/gr_callback"


def test_stolen_code_is_useless_to_another_client(
    server: Server, victim_app: Client, attacker_app: Client, victim: tuple
) -> None:
    _email, browser = victim
    code = code_for(browser, victim_app)
    # Mallory read the code from a log or a referrer and redeems it with her own app.
    stolen = exchange(server, attacker_app, code)
    assert stolen.status_code == 400, stolen.text
    assert stolen.json()["error"] == "invalid_grant"
    assert "access_token" not in stolen.text
    # Her attempt did not even burn it: the victim's app still gets its tokens.
    honest = exchange(server, victim_app, code)
    assert honest.status_code == 200, honest.text


def test_replayed_code_fails_and_revokes_the_tokens_of_the_first_use(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    _email, browser = victim
    code = code_for(browser, victim_app)
    first = exchange(server, victim_app, code)
    assert first.status_code == 200
    tokens = first.json()
    assert server.api("GET", "/v3/accounts", tokens["access_token"]).status_code == 200
    # The attacker replays the intercepted code (through the client, whose secret leaked).
    replay = exchange(server, victim_app, code)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    # RFC 6749 §4.1.2: everything issued from that code is revoked.
    assert server.api("GET", "/v3/accounts", tokens["access_token"]).status_code == 401
    again = server.token(
        victim_app, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert again.status_code == 400, again.text


def test_intercepted_pkce_code_needs_the_verifier(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    _email, browser = victim
    verifier, challenge = pkce_pair()
    code = code_for(browser, victim_app, code_challenge=challenge, code_challenge_method="S256")
    # The attacker has the code (and the client's secret) but not the verifier.
    no_verifier = exchange(server, victim_app, code)
    assert no_verifier.status_code == 400 and no_verifier.json()["error"] == "invalid_grant"
    guessed = exchange(server, victim_app, code, code_verifier=pkce_pair()[0])
    assert guessed.status_code == 400 and guessed.json()["error"] == "invalid_grant"
    # A failed redemption does not spend the code (no denial of service by a thief); the
    # verifier has 256 bits, so trying more of them gets nowhere. The honest client wins.
    honest = exchange(server, victim_app, code, code_verifier=verifier)
    assert honest.status_code == 200, honest.text


def test_injected_code_fails_with_the_victims_verifier(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    """RFC 9700 §4.5: Mallory injects a code issued to *her* into the victim's session."""
    _, mallory = signup(server, "Mallory")
    _, mallory_challenge = pkce_pair()
    injected = code_for(
        mallory, victim_app, code_challenge=mallory_challenge, code_challenge_method="S256"
    )
    victims_verifier, _ = pkce_pair()  # the victim's client redeems with its own verifier
    r = exchange(server, victim_app, injected, code_verifier=victims_verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_pkce_downgrade_is_refused(server: Server, victim_app: Client, victim: tuple) -> None:
    """RFC 9700 §4.8: the attacker strips code_challenge from the request, then redeems a
    code with a code_verifier — the server must notice a verifier without a challenge."""
    _email, browser = victim
    verifier, _challenge = pkce_pair()
    code = code_for(browser, victim_app)  # issued without a challenge
    r = exchange(server, victim_app, code, code_verifier=verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_plain_pkce_and_a_challenge_without_method_are_refused(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    _email, browser = victim
    verifier, challenge = pkce_pair()
    for extra in (
        {"code_challenge": verifier, "code_challenge_method": "plain"},
        {"code_challenge": challenge},  # RFC 7636 would default this to plain
        {"code_challenge": challenge, "code_challenge_method": "s256"},
        {"code_challenge": "short", "code_challenge_method": "S256"},
    ):
        r = authorize(browser, victim_app, **extra)
        assert r.status_code == 302, (extra, r.status_code)
        q = redirect_params(r)
        assert q.get("error") == "invalid_request", (extra, q)
        assert "code" not in q


def test_code_is_bound_to_its_redirect_uri(server: Server, victim: tuple) -> None:
    other = "https://mytemplatemaker.example.com/other_callback"
    app = server.new_client((CALLBACK, other), name="Two Callbacks")
    _email, browser = victim
    code = code_for(browser, app, redirect_uri=CALLBACK)
    for wrong in (None, other, CALLBACK + "/", CALLBACK.upper()):
        form = {} if wrong is None else {"redirect_uri": wrong}
        r = exchange(server, app, code, **form)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", (wrong, r.text)


def test_expired_code_is_refused(lab: Server, lab_app: Client) -> None:
    _email, browser = signup(lab)
    code = code_for(browser, lab_app)
    time.sleep(3.2)  # CONSENTRY_CODE_TTL=2 on this server
    r = exchange(lab, lab_app, code)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
