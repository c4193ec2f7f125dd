"""The whole flow with Client and AsyncClient against a live server; state and denial checks."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from toolkit_support import open_authorize_url, signup

from consentry.client import (
    AccessDenied,
    APIError,
    MemoryTokenStore,
    ReauthorizationRequired,
    StateMismatch,
    TokenSet,
)


def _check_authorize_url(server: Any, url: str, client_id: str) -> dict[str, str]:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{server.url}/oauth2_authorize.html"
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q["response_type"] == "code" and q["client_id"] == client_id
    assert len(q["state"]) >= 32  # unguessable
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43  # PKCE
    return q


def test_whole_flow_sync(server: Any, toolkit: Callable[..., Any]) -> None:
    tk = toolkit(server)
    client = tk.sync
    auth = client.start()
    _check_authorize_url(server, auth.url, tk.app.client_id)
    email = signup(server, "Ann Client")
    callback = open_authorize_url(server, tk.app, auth.url, email)
    assert "code=" in callback and "iss=" in callback

    tokens = client.handle_callback(callback, auth.to_dict(), key="ann")
    assert isinstance(tokens, TokenSet) and tokens.refresh_token and tokens.expires_in == 3600
    assert tk.requests.grant_types() == ["authorization_code"]
    # The request carried HTTP Basic client authentication and the PKCE verifier.
    sent = tk.requests.seen[0]
    assert sent.headers["authorization"].startswith("Basic ")
    assert b"code_verifier=" in sent.content and b"client_secret" not in sent.content

    account = client.get("/accounts", key="ann").data
    assert account["email"] == email
    page = client.get("/from-fields", key="ann")
    assert [f["email"] for f in page.data] == [email]
    assert page.data[0]["isDefault"] == "true" and page.headers["TotalCount"] == "1"

    added = client.post(
        "/from-fields", key="ann", json={"name": "Newsletter", "email": "news@example.com"}
    )
    assert added.status_code in (200, 201) and added.data["email"] == "news@example.com"
    emails = {f["email"] for f in client.get("/from-fields", key="ann").data}
    assert emails == {email, "news@example.com"}
    with pytest.raises(APIError) as err:  # the same address twice: GetResponse's 1008
        client.post("/from-fields", key="ann", json={"name": "X", "email": "news@example.com"})
    assert err.value.code == 1008

    # Disconnect: RFC 7009 revocation of the grant, then the tokens are forgotten.
    client.disconnect(key="ann")
    assert client.store.load("ann") is None
    assert server.api("GET", "/v3/accounts", tokens.access_token).status_code == 401
    refresh = server.token(
        tk.app, grant_type="refresh_token", refresh_token=tokens.refresh_token or ""
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    with pytest.raises(ReauthorizationRequired):
        client.get("/accounts", key="ann")


async def test_whole_flow_async(server: Any, toolkit: Callable[..., Any]) -> None:
    tk = toolkit(server, kind="async")
    client = tk.aio
    try:
        auth = client.start()
        _check_authorize_url(server, auth.url, tk.app.client_id)
        email = signup(server, "Bo Async")
        callback = open_authorize_url(server, tk.app, auth.url, email)
        # The session keeps only the dict; the callback gets the query as a mapping.
        query = dict(httpx.URL(callback).params)
        tokens = await client.handle_callback(query, auth.to_dict(), key="bo")
        assert tokens.refresh_token

        assert (await client.get("/accounts", key="bo")).data["email"] == email
        await client.post("/from-fields", key="bo", json={"name": "Bo", "email": "bo@example.org"})
        fields = (await client.get("/from-fields", key="bo")).data
        assert {f["email"] for f in fields} == {email, "bo@example.org"}

        await client.disconnect(key="bo")
        assert client.store.load("bo") is None
        assert server.api("GET", "/v3/accounts", tokens.access_token).status_code == 401
        with pytest.raises(ReauthorizationRequired) as exc:
            await client.get("/accounts", key="bo")
        assert exc.value.url.startswith(f"{server.url}/oauth2_authorize.html?")
    finally:
        await tk.aclose()


def test_state_mismatch_is_rejected_and_the_code_is_not_spent(
    server: Any, toolkit: Callable[..., Any]
) -> None:
    tk = toolkit(server)
    client = tk.sync
    mine, other = client.start(), client.start()
    assert mine.state != other.state
    callback = open_authorize_url(server, tk.app, mine.url, signup(server))

    with pytest.raises(StateMismatch):  # another pending request's state
        client.handle_callback(callback, other.to_dict(), key="k")
    with pytest.raises(StateMismatch):  # nothing kept in this session (e.g. a forged link)
        client.handle_callback(callback, None, key="k")
    forged = callback.replace(f"state={mine.state}", f"state={secrets.token_urlsafe(32)}")
    with pytest.raises(StateMismatch):  # the attacker's state
        client.handle_callback(forged, mine, key="k")
    assert tk.requests.count == 0  # nothing reached the token endpoint
    assert client.store.load("k") is None

    client.handle_callback(callback, mine, key="k")  # the genuine callback still works
    assert client.get("/accounts", key="k").status_code == 200


def test_access_denied_is_a_clear_exception(server: Any, toolkit: Callable[..., Any]) -> None:
    tk = toolkit(server, store=MemoryTokenStore())
    auth = tk.sync.start()
    callback = open_authorize_url(server, tk.app, auth.url, signup(server), decision="deny")
    with pytest.raises(AccessDenied) as exc:
        tk.sync.handle_callback(callback, auth, key="d")
    assert exc.value.error == "access_denied"
    assert tk.requests.count == 0 and tk.sync.store.load("d") is None
