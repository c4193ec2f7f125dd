"""A code or refresh token whose grant was revoked: refused, and nothing is spent or minted.

The token endpoint reads the code (or refresh token) with the client before it writes, and on
PostgreSQL spends, touches the grant and mints in one statement; these pin the answers of
that path to the ones the spend-then-check transaction gave.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from oauth_support import CSRF, Codes, assert_oauth_error


@pytest.fixture
def fresh_codes(server: Any) -> Iterator[Codes]:
    """Codes of an account of its own: revoking its grants touches no other test."""
    c = Codes(server)
    yield c
    c.close()


def disconnect_app(server: Any, codes: Codes) -> None:
    """The user revokes the application on the connected-apps page: every grant ends."""
    page = codes.browser.get("/connected-apps")
    csrf = CSRF.search(page.text)
    assert csrf, page.text
    r = codes.browser.post(
        f"/connected-apps/{server.client.client_id}/revoke",
        data={"csrf_token": csrf.group(1)},
    )
    assert r.status_code == 303, r.text


def exchange(server: Any, code: str) -> httpx.Response:
    return server.token(server.client, grant_type="authorization_code", code=code)


def test_code_of_a_revoked_grant_is_refused_and_stays_unspent(
    server: Any, fresh_codes: Codes
) -> None:
    fresh_codes.tokens()  # the app is connected (a live grant to show on the page)
    code = fresh_codes()
    disconnect_app(server, fresh_codes)
    for _ in range(2):  # not spent by the first attempt: the same answer, not a replay
        body = assert_oauth_error(exchange(server, code), 400, "invalid_grant")
        assert body["error_description"] == "the authorization was revoked", body


def test_unspent_refresh_token_of_a_revoked_grant_is_refused(
    server: Any, fresh_codes: Codes
) -> None:
    t = fresh_codes.tokens()
    disconnect_app(server, fresh_codes)
    for _ in range(2):
        r = server.token(
            server.client, grant_type="refresh_token", refresh_token=t["refresh_token"]
        )
        body = assert_oauth_error(r, 400, "invalid_grant")
        assert body["error_description"] == "the authorization was revoked", body
    assert server.api("GET", "/v3/from-fields", t["access_token"]).status_code == 401


def test_spent_refresh_token_of_a_revoked_grant_says_revoked(
    server: Any, fresh_codes: Codes
) -> None:
    t = fresh_codes.tokens()
    r = server.token(server.client, grant_type="refresh_token", refresh_token=t["refresh_token"])
    assert r.status_code == 200, r.text
    disconnect_app(server, fresh_codes)
    r = server.token(server.client, grant_type="refresh_token", refresh_token=t["refresh_token"])
    body = assert_oauth_error(r, 400, "invalid_grant")
    assert body["error_description"] == "refresh token has been revoked", body


def test_a_failed_check_leaves_the_code_redeemable(server: Any, fresh_codes: Codes) -> None:
    code = fresh_codes()
    r = server.token(
        server.client, grant_type="authorization_code", code=code,
        redirect_uri="https://elsewhere.example/cb",
    )
    assert_oauth_error(r, 400, "invalid_grant")
    r = exchange(server, code)
    assert r.status_code == 200, r.text
    body = assert_oauth_error(exchange(server, code), 400, "invalid_grant")
    assert "already used" in body["error_description"]
    assert server.api("GET", "/v3/from-fields", r.json()["access_token"]).status_code == 401
