"""Secrets leaking through logs, a database dump, referrers and caches
(RFC 6819 §4.4.1.4-5, §5.1.4.1; RFC 9700 §4.2, §4.3)."""

from __future__ import annotations

import httpx

from tests.attacks.support import (
    PASSWORD,
    Client,
    Server,
    authorize,
    consent,
    csrf_of,
    exchange,
    pkce_pair,
    redirect_params,
    refresh,
    signup,
)
from tests.conftest import REQUEST_ID

STATE = "state-7f3a9c0e1d2b4a6f8e0c2a4b6d8f0e1c"


def full_flow(server: Server, app: Client) -> dict[str, str]:
    """Everything a user and an application do, with every secret value it produced."""
    email, b = signup(server)
    b.post("/logout", data={"csrf_token": csrf_of(b)})
    csrf = csrf_of(b, "/login")
    session_before = b.cookies["consentry_session"]
    assert b.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf}
                  ).status_code == 303
    verifier, challenge = pkce_pair()
    page = authorize(b, app, state=STATE, code_challenge=challenge,
                     code_challenge_method="S256", scope="account.read from-fields.read")
    request_id = REQUEST_ID.search(page.text)
    assert request_id
    code = redirect_params(consent(b, page))["code"]
    wrong_secret = "f" * 64
    httpx.post(f"{server.url}/v3/token", auth=(app.client_id, wrong_secret),
               data={"grant_type": "authorization_code", "code": code})
    pair = exchange(server, app, code, code_verifier=verifier).json()
    rotated = refresh(server, app, pair["refresh_token"]).json()
    refresh(server, app, pair["refresh_token"])  # a retry inside the grace window
    server.api("GET", "/v3/accounts", rotated["access_token"])
    server.api("GET", "/v3/accounts", pair["access_token"])
    httpx.get(f"{server.url}/v3/accounts", params={"access_token": rotated["access_token"]})
    httpx.post(f"{server.url}/v3/token/introspect", auth=app.auth,
               data={"token": rotated["access_token"]})
    httpx.post(f"{server.url}/v3/token/revoke", auth=app.auth,
               data={"token": rotated["refresh_token"]})
    server.api("GET", "/v3/accounts", rotated["access_token"])  # revoked: a 401 path
    exchange(server, app, code, code_verifier=verifier)  # a replay: an error path
    values = {
        "password": PASSWORD,
        "code": code,
        "code_verifier": verifier,
        "state": STATE,
        "access token": pair["access_token"],
        "refresh token": pair["refresh_token"],
        "rotated access token": rotated["access_token"],
        "rotated refresh token": rotated["refresh_token"],
        "client secret": app.client_secret,
        "wrong secret tried": wrong_secret,
        "session cookie": b.cookies["consentry_session"],
        "pre-login session cookie": session_before,
        "csrf token": csrf,
        "consent request id": request_id.group(1),
    }
    b.close()
    return values


def test_server_log_holds_no_secret_after_a_full_flow(strict: Server, strict_app: Client) -> None:
    """At debug level (the most that is ever logged), through success and error paths."""
    values = full_flow(strict, strict_app)
    log = strict.log_path.read_text(errors="replace")
    assert '"level"' in log and len(log) > 1000  # the log is being written, at debug level
    leaked = [name for name, v in values.items() if v in log or v.upper() in log]
    assert leaked == []
    assert "$argon2" not in log, "a password hash was logged"


def test_database_dump_holds_no_usable_secret(server: Server, victim_app: Client) -> None:
    values = full_flow(server, victim_app)
    values.pop("state")  # kept with the pending request by design: it is not a credential
    dump = server.dump_bytes()
    assert victim_app.client_id.encode() in dump  # the dump is the live database
    leaked = [name for name, v in values.items()
              if v.encode() in dump or v.upper().encode() in dump]
    assert leaked == []


def test_pages_and_redirects_send_no_referrer_and_are_not_cached(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    """The consent page's URL carries state and the challenge; the redirect carries the code.
    Neither may travel on in a Referer header or stay in a shared cache."""
    _email, browser = victim
    page = authorize(browser, victim_app, state=STATE, scope="account.read")
    answers = {
        "consent page": page,
        "code redirect": consent(browser, page),
        "error redirect": authorize(browser, victim_app, response_type="bogus", state=STATE),
        "login page": httpx.get(f"{server.url}/login"),
    }
    for name, r in answers.items():
        assert r.headers.get("referrer-policy") == "no-referrer", name
        assert "no-store" in r.headers.get("cache-control", ""), name
