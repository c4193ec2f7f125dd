"""Client impersonation and abuse of the token, revocation and introspection endpoints
(RFC 6819 §4.3, §5.2.3; RFC 6749 §2.3.1, §3.2; RFC 7009 §2.1; RFC 7662 §4)."""

from __future__ import annotations

import base64

import httpx

from tests.attacks.support import Client, Server, code_for, exchange, from_address, token_pair


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def test_client_impersonation_is_refused(
    server: Server, victim_app: Client, attacker_app: Client, shared_victim: tuple
) -> None:
    _email, browser = shared_victim
    code = code_for(browser, victim_app)
    url = "/v3/token"
    form = {"grant_type": "authorization_code", "code": code}
    vid, secret = victim_app.auth
    attempts = {
        "no authentication": ({}, form),
        "id only in body": ({}, {**form, "client_id": vid}),
        "wrong secret": (basic(vid, "0" * 64), form),
        "empty secret": (basic(vid, ""), form),
        "secret prefix": (basic(vid, secret[:-1]), form),
        "secret plus suffix": (basic(vid, secret + "0"), form),
        "other client's secret": (basic(vid, attacker_app.client_secret), form),
        "unknown client": (basic("0" * 32, secret), form),
        "wrong secret in body": ({}, {**form, "client_id": vid, "client_secret": "x" * 64}),
        "two methods": (basic(vid, secret), {**form, "client_id": vid, "client_secret": secret}),
        "basic id differs from body id": (basic(attacker_app.client_id,
                                                attacker_app.client_secret),
                                          {**form, "client_id": vid}),
        "bearer scheme": ({"Authorization": f"Bearer {secret}"}, form),
    }
    mallory = from_address(server, "127.0.0.3")  # her failures do not lock the victim out
    for name, (headers, data) in attempts.items():
        r = mallory.post(url, headers=headers, data=data)
        assert r.status_code in (400, 401), (name, r.status_code, r.text)
        assert "access_token" not in r.text, name
        body = r.json()
        assert body["error"] in ("invalid_client", "invalid_request", "invalid_grant"), name
        if r.status_code == 401:
            assert r.headers["www-authenticate"].lower().startswith("basic"), name
    mallory.close()
    # None of that burned the code: the real client still redeems it.
    assert exchange(server, victim_app, code).status_code == 200


def test_client_cannot_revoke_or_introspect_another_clients_tokens(
    server: Server, victim_app: Client, attacker_app: Client, victim: tuple
) -> None:
    _email, browser = victim
    pair = token_pair(server, victim_app, browser)
    for token in (pair["access_token"], pair["refresh_token"]):
        seen = httpx.post(f"{server.url}/v3/token/introspect", auth=attacker_app.auth,
                          data={"token": token})
        assert seen.status_code == 200 and seen.json() == {"active": False}
        revoked = httpx.post(f"{server.url}/v3/token/revoke", auth=attacker_app.auth,
                             data={"token": token})
        assert revoked.status_code in (200, 400)
    # Both tokens still live for their owner.
    assert server.api("GET", "/v3/accounts", pair["access_token"]).status_code == 200
    own = httpx.post(f"{server.url}/v3/token/introspect", auth=victim_app.auth,
                     data={"token": pair["refresh_token"]})
    assert own.json()["active"] is True
    # Without client authentication at all: 401.
    for path in ("/v3/token/revoke", "/v3/token/introspect"):
        r = httpx.post(f"{server.url}{path}", data={"token": pair["access_token"]})
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_token_request_in_the_url_is_refused(
    server: Server, victim_app: Client, shared_victim: tuple
) -> None:
    """Codes and secrets in a query string end up in proxy logs and histories."""
    _email, browser = shared_victim
    code = code_for(browser, victim_app)
    vid, secret = victim_app.auth
    r = httpx.post(
        f"{server.url}/v3/token",
        params={"grant_type": "authorization_code", "code": code, "client_id": vid,
                "client_secret": secret},
    )
    assert r.status_code in (400, 401) and "access_token" not in r.text
    r = httpx.post(f"{server.url}/v3/token", auth=victim_app.auth, params={"code": code},
                   data={"grant_type": "authorization_code", "code": code})
    assert r.status_code == 400 and "access_token" not in r.text


def test_parameter_pollution_is_refused(
    server: Server, victim_app: Client, attacker_app: Client, shared_victim: tuple
) -> None:
    _email, browser = shared_victim
    code = code_for(browser, victim_app)
    body = f"grant_type=authorization_code&code={code}&code=other"
    r = httpx.post(f"{server.url}/v3/token", auth=victim_app.auth, content=body,
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    body = (f"grant_type=authorization_code&code={code}&client_id={attacker_app.client_id}"
            f"&client_id={victim_app.client_id}&client_secret={victim_app.client_secret}")
    r = httpx.post(f"{server.url}/v3/token", content=body,
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code in (400, 401) and "access_token" not in r.text
    assert exchange(server, victim_app, code).status_code == 200


def test_token_responses_are_never_cached(
    server: Server, victim_app: Client, shared_victim: tuple
) -> None:
    """RFC 6749 §5.1: no-store, so no proxy or browser cache keeps a token."""
    _email, browser = shared_victim
    ok = exchange(server, victim_app, code_for(browser, victim_app))
    refreshed = server.token(victim_app, grant_type="refresh_token",
                             refresh_token=ok.json()["refresh_token"])
    failed = server.token(victim_app, grant_type="authorization_code", code="0" * 40)
    introspected = httpx.post(f"{server.url}/v3/token/introspect", auth=victim_app.auth,
                              data={"token": refreshed.json()["access_token"]})
    for r in (ok, refreshed, failed, introspected):
        assert r.headers.get("cache-control") == "no-store", r.request.url
        assert r.headers.get("pragma") == "no-cache"


def test_other_origins_cannot_read_tokens_or_api_answers(
    server: Server, victim_app: Client
) -> None:
    """No CORS: a page on another origin cannot read a token response or API data."""
    origin = {"Origin": "https://evil.example"}
    for method, path in (("POST", "/v3/token"), ("GET", "/v3/accounts"),
                         ("OPTIONS", "/v3/token"), ("OPTIONS", "/v3/accounts")):
        headers = {**origin, "Access-Control-Request-Method": "POST"}
        r = httpx.request(method, f"{server.url}{path}", headers=headers)
        allowed = {k.lower() for k in r.headers if k.lower().startswith("access-control-")}
        assert not allowed, (method, path, allowed)
