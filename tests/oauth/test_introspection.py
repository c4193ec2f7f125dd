"""Token introspection ``POST /v3/token/introspect`` (RFC 7662; SPEC §2 conventions)."""

from __future__ import annotations

import time
from typing import Any

import httpx
from oauth_support import Codes, assert_oauth_error

INACTIVE = {"active": False}


def introspect(server: Any, client: Any, **form: str) -> Any:
    r = httpx.post(f"{server.url}/v3/token/introspect", auth=client.auth, data=form, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()


def test_own_client_sees_a_live_access_token(server: Any, codes: Codes) -> None:
    t = codes.tokens(scope="account.read")
    body = introspect(server, server.client, token=t["access_token"])
    assert body["active"] is True
    assert body["client_id"] == server.client.client_id
    assert body["scope"] == "account.read"
    assert body["token_type"] == "Bearer"
    assert isinstance(body["exp"], int) and 3500 < body["exp"] - time.time() <= 3601


def test_full_access_token_has_null_scope(server: Any, codes: Codes) -> None:
    body = introspect(server, server.client, token=codes.tokens()["access_token"])
    assert body["active"] is True and body["scope"] is None


def test_own_client_sees_a_live_refresh_token(server: Any, codes: Codes) -> None:
    t = codes.tokens()
    body = introspect(
        server, server.client, token=t["refresh_token"], token_type_hint="refresh_token"
    )
    assert body["active"] is True and body["client_id"] == server.client.client_id
    assert body["exp"] > time.time() + 86400


def test_another_client_sees_only_inactive(server: Any, codes: Codes, other_client: Any) -> None:
    t = codes.tokens()
    assert introspect(server, other_client, token=t["access_token"]) == INACTIVE
    assert introspect(server, other_client, token=t["refresh_token"]) == INACTIVE


def test_a_resource_server_sees_any_live_token(
    server: Any, codes: Codes, resource_server_client: Any
) -> None:
    t = codes.tokens()
    body = introspect(server, resource_server_client, token=t["access_token"])
    assert body["active"] is True
    assert body["client_id"] == server.client.client_id
    assert {"exp", "scope", "token_type"} <= set(body)


def test_unknown_token_is_inactive(server: Any) -> None:
    assert introspect(server, server.client, token="0" * 40) == INACTIVE
    assert introspect(server, server.client, token="nope", token_type_hint="refresh_token") == (
        INACTIVE
    )


def test_revoked_tokens_are_inactive(
    server: Any, codes: Codes, resource_server_client: Any
) -> None:
    t = codes.tokens()
    r = httpx.post(
        f"{server.url}/v3/token/revoke", auth=server.client.auth, data={"token": t["refresh_token"]}
    )
    assert r.status_code == 200
    for client in (server.client, resource_server_client):
        assert introspect(server, client, token=t["access_token"]) == INACTIVE
        assert introspect(server, client, token=t["refresh_token"]) == INACTIVE


def test_rotated_refresh_token_is_inactive(server: Any, codes: Codes) -> None:
    t = codes.tokens()
    server.token(server.client, grant_type="refresh_token", refresh_token=t["refresh_token"])
    assert introspect(server, server.client, token=t["refresh_token"]) == INACTIVE


def test_introspection_requires_client_authentication(server: Any, codes: Codes) -> None:
    t = codes.tokens()
    r = httpx.post(f"{server.url}/v3/token/introspect", data={"token": t["access_token"]})
    assert_oauth_error(r, 401, "invalid_client")
    r = httpx.post(
        f"{server.url}/v3/token/introspect",
        auth=(server.client.client_id, "wrong"),
        data={"token": t["access_token"]},
    )
    body = assert_oauth_error(r, 401, "invalid_client")
    assert "active" not in body


def test_missing_token_parameter_is_invalid_request(server: Any) -> None:
    r = httpx.post(f"{server.url}/v3/token/introspect", auth=server.client.auth, data={})
    assert_oauth_error(r, 400, "invalid_request")
