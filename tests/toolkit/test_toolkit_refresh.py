"""Expiry -> transparent refresh; 50 concurrent callers -> one refresh; expired grant -> reauth.

Counted twice: the toolkit's own requests (an httpx event hook) and the server's access
log (one JSON line per request at CONSENTRY_LOG_LEVEL=info).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from toolkit_support import open_authorize_url, signup, token_log_lines

from consentry.client import APIResponse, MemoryTokenStore, ReauthorizationRequired

CALLERS = 50


def _wait_past(expires_at: float | None) -> None:
    assert expires_at is not None
    time.sleep(max(expires_at - time.time(), 0) + 0.3)


def _wait_for_log(server: Any, expected: int) -> int:
    deadline = time.monotonic() + 5
    while token_log_lines(server) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # and nothing more arrives
    return token_log_lines(server)


def test_expired_access_token_is_refreshed_transparently(
    expiring_server: Any, toolkit: Callable[..., Any]
) -> None:
    tk = toolkit(expiring_server)
    client = tk.sync
    tk.connect_sync("k")
    before = client.store.load("k")
    assert before is not None and before.expires_in == 3
    _wait_past(before.expires_at)
    # The server now refuses the old token: the seed's 401/1014 "expired" body.
    raw = expiring_server.api("GET", "/v3/accounts", before.access_token)
    assert (
        raw.status_code == 401 and raw.json()["message"] == "The access token provided is expired"
    )

    assert client.get("/from-fields", key="k").status_code == 200  # no error reaches the app
    after = client.store.load("k")
    assert after is not None
    assert after.access_token != before.access_token
    assert after.refresh_token != before.refresh_token  # rotated, and the rotation was stored
    assert tk.requests.grant_types() == ["authorization_code", "refresh_token"]


async def test_fifty_concurrent_tasks_on_an_expired_token_refresh_once(
    expiring_server: Any, toolkit: Callable[..., Any]
) -> None:
    tk = toolkit(expiring_server, kind="async", store=MemoryTokenStore())
    client = tk.aio
    try:
        await tk.connect_async("shared")
        tokens = client.store.load("shared")
        assert tokens is not None
        await asyncio.to_thread(_wait_past, tokens.expires_at)
        logged = token_log_lines(expiring_server)

        results = await asyncio.gather(
            *(client.get("/from-fields", key="shared") for _ in range(CALLERS))
        )
        assert all(isinstance(r, APIResponse) and r.status_code == 200 for r in results)
        assert tk.requests.grant_types() == ["authorization_code", "refresh_token"]
        assert _wait_for_log(expiring_server, logged + 1) == logged + 1  # the server saw ONE
    finally:
        await tk.aclose()


def test_fifty_threads_on_a_token_the_server_expired_refresh_once(
    expiring_server: Any, toolkit: Callable[..., Any]
) -> None:
    """The client does not know the token expired (no expires_at): fifty 401s, one refresh."""
    tk = toolkit(expiring_server, store=MemoryTokenStore())
    client = tk.sync
    tk.connect_sync("shared")
    tokens = client.store.load("shared")
    assert tokens is not None
    _wait_past(tokens.expires_at)
    client.store.save("shared", dataclasses.replace(tokens, expires_in=None, expires_at=None))
    logged = token_log_lines(expiring_server)

    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        results = list(pool.map(lambda _: client.get("/accounts", key="shared"), range(CALLERS)))
    assert all(r.status_code == 200 for r in results)
    assert tk.requests.grant_types() == ["authorization_code", "refresh_token"]
    assert _wait_for_log(expiring_server, logged + 1) == logged + 1


async def test_expired_refresh_token_requires_reauthorization(
    short_refresh_server: Any, toolkit: Callable[..., Any]
) -> None:
    server = short_refresh_server
    tk, atk = toolkit(server), toolkit(server, kind="async")
    client = tk.sync
    email = signup(server)
    try:
        tk.connect_sync("k", email)
        await atk.connect_async("k")
        first = client.store.load("k")
        assert first is not None
        await asyncio.sleep(2.3)  # past the refresh tokens' 2 s lifetime

        with pytest.raises(ReauthorizationRequired) as caught:
            client.get("/accounts", key="k")
        with pytest.raises(ReauthorizationRequired) as caught_async:
            await atk.aio.get("/from-fields", key="k")
    finally:
        await atk.aclose()
    exc = caught.value
    assert "refresh token was rejected" in exc.reason
    assert tk.requests.grant_types()[-1] == "refresh_token"
    assert caught_async.value.url.startswith(f"{server.url}/oauth2_authorize.html?")
    # It carries a fresh authorize URL (new state, new PKCE challenge) to send the user to.
    q = {k: v[0] for k, v in parse_qs(urlsplit(exc.url).query).items()}
    assert exc.url.startswith(f"{server.url}/oauth2_authorize.html?")
    assert q["client_id"] == tk.app.client_id and q["code_challenge_method"] == "S256"
    assert q["state"] == exc.authorization.state and len(q["state"]) >= 32
    assert exc.authorization.state != caught_async.value.authorization.state

    # Following it reconnects the account.
    callback = open_authorize_url(server, tk.app, exc.url, email)
    client.handle_callback(callback, exc.authorization.to_dict(), key="k")
    assert client.get("/accounts", key="k").data["email"] == email
    again = client.store.load("k")
    assert again is not None and again.refresh_token != first.refresh_token
