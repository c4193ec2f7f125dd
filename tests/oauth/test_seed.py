"""The GetResponse "OAuth 2.0 - Authorization Code" document, step by step, literally."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from oauth_support import CALLBACK, HEX40, assert_oauth_error, redirect_params, signup

SEED_401 = {
    "httpStatus": 401,
    "code": 1014,
    "codeDescription": "Problem during authentication process, check headers!",
    "message": "The access token provided is expired",
    "moreInfo": "https://apidocs.getresponse.com/en/v3/errors/1014",
}


def curl_u(server: Any, client: Any, body: str) -> httpx.Response:
    """``curl -u client_id:client_secret URL -d BODY``: Basic auth, a raw form body."""
    return httpx.post(
        f"{server.url}/v3/token",
        auth=client.auth,
        content=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )


def seed_authorization(server: Any, client: Any, email: str) -> str:
    """Only response_type, client_id and state, as the seed's authorize URL has."""
    r = server.authorize(client, email, state="random_string")
    assert r.status_code in (302, 303)
    loc = r.headers["location"]
    assert loc.startswith(f"{CALLBACK}?code="), loc
    q = redirect_params(r)
    assert q["state"] == "random_string"
    assert HEX40.fullmatch(q["code"]), q
    assert q["iss"] == server.url  # RFC 9207, beside what the seed shows
    assert set(q) == {"code", "state", "iss"}
    return q["code"]


def assert_seed_token(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["access_token", "expires_in", "token_type", "scope", "refresh_token"]
    assert HEX40.fullmatch(body["access_token"]) and HEX40.fullmatch(body["refresh_token"])
    assert body["expires_in"] == 3600 and type(body["expires_in"]) is int
    assert body["token_type"] == "Bearer"
    assert body["scope"] is None
    return dict(body)


def test_seed_flow_from_authorize_url_to_api_call_and_refresh(server: Any) -> None:
    client, email = server.client, signup(server)
    code = seed_authorization(server, client, email)

    tokens = assert_seed_token(curl_u(server, client, f"grant_type=authorization_code&code={code}"))

    r = server.api("GET", "/v3/from-fields", tokens["access_token"])
    assert r.status_code == 200, r.text
    assert [f["email"] for f in r.json()] == [email]

    refreshed = assert_seed_token(
        curl_u(server, client, f"grant_type=refresh_token&refresh_token={tokens['refresh_token']}")
    )
    assert refreshed["access_token"] != tokens["access_token"]
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    assert server.api("GET", "/v3/from-fields", refreshed["access_token"]).status_code == 200


def test_seed_code_is_single_use(server: Any) -> None:
    client = server.client
    code = seed_authorization(server, client, signup(server))
    assert curl_u(server, client, f"grant_type=authorization_code&code={code}").status_code == 200
    r = curl_u(server, client, f"grant_type=authorization_code&code={code}")
    assert_oauth_error(r, 400, "invalid_grant")


@pytest.fixture(scope="module")
def expired(short_server: Any) -> dict[str, Any]:
    """A token pair from a server whose tokens live 1 s, after 2 s have passed."""
    tokens = short_server.tokens(short_server.client, signup(short_server))
    time.sleep(2.1)
    return tokens


def test_expired_access_token_gets_the_seeds_401_body(short_server: Any, expired: Any) -> None:
    token = expired["access_token"]
    r = short_server.api("GET", "/v3/from-fields", token)
    assert r.status_code == 401
    body = r.json()
    assert body["uuid"] == r.headers["x-request-id"]
    assert {k: v for k, v in body.items() if k != "uuid"} == {
        **SEED_401,
        "context": {"sentToken": token},
    }
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge


def test_expired_refresh_token_needs_a_new_authorization(short_server: Any, expired: Any) -> None:
    r = short_server.token(
        short_server.client, grant_type="refresh_token", refresh_token=expired["refresh_token"]
    )
    body = assert_oauth_error(r, 400, "invalid_grant")
    assert "expired" in body["error_description"]


def test_expired_token_is_inactive_to_introspection(short_server: Any, expired: Any) -> None:
    for token in (expired["access_token"], expired["refresh_token"]):
        r = httpx.post(
            f"{short_server.url}/v3/token/introspect",
            auth=short_server.client.auth,
            data={"token": token},
        )
        assert r.status_code == 200 and r.json() == {"active": False}
