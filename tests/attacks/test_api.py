"""Attacks on the /v3 API: tokens in URLs, another account's data, scope, revocation by
the user, injection, floods, Host header games (RFC 6750 §2.3, §5; RFC 6819 §4.6)."""

from __future__ import annotations

import concurrent.futures

import httpx

from tests.attacks.support import Client, Server, csrf_of, signup, token_pair


def test_access_token_in_the_url_is_refused(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    _email, browser = victim
    token = token_pair(server, victim_app, browser)["access_token"]
    for params in ({"access_token": token}, {"access_token": token, "fields": "email"}):
        r = httpx.get(f"{server.url}/v3/accounts", params=params)
        assert r.status_code == 401, r.text
        assert "email" not in r.json().get("context", {})
    form = httpx.post(f"{server.url}/v3/from-fields", data={"access_token": token})
    assert form.status_code == 401


def test_token_cannot_reach_another_accounts_data(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    victim_email, browser = victim
    mallory_email, mallory = signup(server, "Mallory")
    theirs = token_pair(server, victim_app, browser)["access_token"]
    mine = token_pair(server, victim_app, mallory)["access_token"]
    victim_fields = server.api("GET", "/v3/from-fields", theirs).json()
    target = victim_fields[0]["fromFieldId"]
    assert server.api("GET", "/v3/accounts", mine).json()["email"] == mallory_email
    for method, path in (
        ("GET", f"/v3/from-fields/{target}"),
        ("DELETE", f"/v3/from-fields/{target}"),
        ("POST", f"/v3/from-fields/{target}/default"),
    ):
        r = server.api(method, path, mine)
        assert r.status_code == 404, (method, path, r.text)
        assert victim_email not in r.text
    listed = server.api("GET", "/v3/from-fields", mine, params={"perPage": "1000"}).json()
    assert all(f["fromFieldId"] != target for f in listed)
    assert victim_email not in str(listed)
    # The victim's from-field is untouched.
    assert server.api("GET", f"/v3/from-fields/{target}", theirs).status_code == 200


def test_narrow_token_cannot_exceed_its_scope(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    _email, browser = victim
    token = token_pair(server, victim_app, browser, scope="account.read")["access_token"]
    assert server.api("GET", "/v3/accounts", token).status_code == 200
    for method, path, kw in (
        ("GET", "/v3/from-fields", {}),
        ("POST", "/v3/from-fields", {"json": {"email": "a@b.example", "name": "x"}}),
        ("GET", "/v3/from-fields/abc", {}),
    ):
        r = server.api(method, path, token, **kw)
        assert r.status_code == 403, (method, path, r.status_code)
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]


def test_revoking_an_app_on_connected_apps_kills_its_tokens_at_once(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    _email, browser = victim
    pair = token_pair(server, victim_app, browser)
    r = browser.post(f"/connected-apps/{victim_app.client_id}/revoke",
                     data={"csrf_token": csrf_of(browser, "/connected-apps")})
    assert r.status_code == 303
    assert server.api("GET", "/v3/accounts", pair["access_token"]).status_code == 401
    again = server.token(victim_app, grant_type="refresh_token",
                         refresh_token=pair["refresh_token"])
    assert again.status_code == 400


def test_injection_in_filters_is_inert(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    """SQL injection and LIKE wildcards in query[...] match nothing they should not."""
    _email, browser = victim
    token = token_pair(server, victim_app, browser)["access_token"]
    for value in ("%", "_", "%@%", "' OR '1'='1", "\" OR 1=1 --", "x'); DROP TABLE users;--",
                  "\\", "%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%"):
        for name in ("query[email]", "query[name]"):
            r = server.api("GET", "/v3/from-fields", token, params={name: value})
            assert r.status_code == 200, (name, value, r.text)
            assert r.json() == [], (name, value, r.json())
            assert r.headers["TotalCount"] == "0"
    assert len(server.api("GET", "/v3/from-fields", token).json()) == 1


def test_api_flood_is_rate_limited(strict: Server, strict_app: Client) -> None:
    """80 calls a second per account in production; 5 on this server."""
    _email, b = signup(strict)
    token = token_pair(strict, strict_app, b)["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=strict.url, headers=headers, timeout=30) as c:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: c.get("/v3/accounts"), range(40)))
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {200, 429}, statuses
    limited = [r for r in answers if r.status_code == 429]
    assert len(limited) >= 20, statuses
    body = limited[0].json()
    assert body["code"] == 1015 and int(limited[0].headers["retry-after"]) >= 1


def test_host_header_cannot_change_the_issuer_or_links(
    server: Server, victim_app: Client, shared_victim: tuple
) -> None:
    """Nothing the server announces is built from the Host or X-Forwarded-* headers."""
    spoof = {"Host": "evil.example", "X-Forwarded-Host": "evil.example",
             "X-Forwarded-Proto": "https", "Forwarded": "host=evil.example;proto=https"}
    meta = httpx.get(f"{server.url}/.well-known/oauth-authorization-server", headers=spoof)
    assert meta.status_code == 200 and "evil" not in meta.text
    doc = httpx.get(f"{server.url}/v3/openapi.json", headers=spoof)
    assert doc.status_code == 200 and "evil" not in doc.text
    _email, browser = shared_victim
    token = token_pair(server, victim_app, browser)["access_token"]
    for path in ("/v3/accounts", "/v3/from-fields"):
        r = server.api("GET", path, token, headers=spoof)
        assert r.status_code == 200 and "evil" not in r.text, path
    r = browser.get("/oauth2_authorize.html", headers=spoof,
                    params={"response_type": "bogus", "client_id": victim_app.client_id})
    assert r.status_code == 302 and "evil" not in r.headers["location"]
