"""Connected applications: listing what holds access to my account, and revoking it."""

from __future__ import annotations

import time
from typing import Any

import httpx
from pagetools import csrf_for, developer_with_app, new_account, signup


def test_connected_apps_lists_and_revokes_with_immediate_effect(server: Any) -> None:
    _dev, client = developer_with_app(server, name="Revocable App")
    email = new_account(server)
    tokens = server.tokens(client, email)
    second = server.tokens(client, email)  # a second grant for the same app
    for t in (tokens, second):
        assert server.api("GET", "/v3/from-fields", t["access_token"]).status_code == 200

    user = server.browser()
    server.login(user, email)
    page = user.get("/connected-apps")
    assert page.status_code == 200
    assert "Revocable App" in page.text
    assert page.text.count(f'action="/connected-apps/{client.client_id}/revoke"') == 1
    assert "Access granted" in page.text and "last used" in page.text
    assert time.strftime("%Y-%m-%d", time.gmtime()) in page.text

    r = user.post(
        f"/connected-apps/{client.client_id}/revoke",
        data={"csrf_token": csrf_for(user, "/connected-apps")},
    )
    assert r.status_code == 303 and r.headers["location"] == "/connected-apps?revoked=1"
    after = user.get(r.headers["location"])
    assert "Access revoked" in after.text and "Revocable App" not in after.text

    for t in (tokens, second):
        api = server.api("GET", "/v3/from-fields", t["access_token"])
        assert api.status_code == 401 and api.json()["code"] == 1014
        refresh = server.token(client, grant_type="refresh_token", refresh_token=t["refresh_token"])
        assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"

    # Consent is asked again next time, not silently re-granted.
    again = user.get(
        "/oauth2_authorize.html",
        params={"response_type": "code", "client_id": client.client_id, "state": "x"},
    )
    assert again.status_code == 200 and 'value="allow"' in again.text


def test_revoke_only_touches_my_own_grants(server: Any) -> None:
    _dev, client = developer_with_app(server)
    mine, theirs = new_account(server), new_account(server)
    their_tokens = server.tokens(client, theirs)
    server.tokens(client, mine)
    user = server.browser()
    server.login(user, mine)
    r = user.post(
        f"/connected-apps/{client.client_id}/revoke",
        data={"csrf_token": csrf_for(user, "/connected-apps")},
    )
    assert r.status_code == 303
    assert server.api("GET", "/v3/from-fields", their_tokens["access_token"]).status_code == 200


def test_revoke_without_a_valid_csrf_token_is_refused(server: Any) -> None:
    _dev, client = developer_with_app(server)
    email = new_account(server)
    tokens = server.tokens(client, email)
    user = server.browser()
    server.login(user, email)
    for data in ({}, {"csrf_token": "1" * 64}):
        r = user.post(f"/connected-apps/{client.client_id}/revoke", data=data)
        assert r.status_code == 403
    assert server.api("GET", "/v3/from-fields", tokens["access_token"]).status_code == 200


def test_connected_apps_needs_login_and_starts_empty(server: Any) -> None:
    r = httpx.get(server.url + "/connected-apps")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fconnected-apps"
    b = server.browser()
    signup(b)
    assert "No application has access" in b.get("/connected-apps").text
