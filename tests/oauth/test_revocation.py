"""Token revocation ``POST /v3/token/revoke`` (RFC 7009; SPEC §2 conventions)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from oauth_support import Codes, assert_oauth_error


def revoke(server: Any, client: Any, **form: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v3/token/revoke", auth=client.auth, data=form, timeout=30)


def status(server: Any, access_token: str) -> int:
    return int(server.api("GET", "/v3/accounts", access_token).status_code)


def test_revocation_requires_client_authentication(server: Any, codes: Codes) -> None:
    t = codes.tokens()
    r = httpx.post(f"{server.url}/v3/token/revoke", data={"token": t["access_token"]})
    assert_oauth_error(r, 401, "invalid_client")
    c = server.client
    r = httpx.post(
        f"{server.url}/v3/token/revoke",
        auth=(c.client_id, "wrong"),
        data={"token": t["access_token"]},
    )
    assert_oauth_error(r, 401, "invalid_client")
    assert status(server, t["access_token"]) == 200


def test_revoking_an_unknown_token_answers_200(server: Any) -> None:
    r = revoke(server, server.client, token="0" * 40)
    assert r.status_code == 200
    r = revoke(server, server.client, token="x", token_type_hint="bogus_hint")
    assert r.status_code == 200


def test_missing_token_parameter_is_invalid_request(server: Any) -> None:
    assert_oauth_error(revoke(server, server.client), 400, "invalid_request")


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
def test_revoking_an_access_token_ends_that_token(
    server: Any, codes: Codes, hint: str | None
) -> None:
    t = codes.tokens()
    form = {"token": t["access_token"]} | ({"token_type_hint": hint} if hint else {})
    r = revoke(server, server.client, **form)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    api = server.api("GET", "/v3/accounts", t["access_token"])
    assert api.status_code == 401 and api.json()["code"] == 1014
    assert 'error="invalid_token"' in api.headers["www-authenticate"]
    # Revoking twice is fine.
    assert revoke(server, server.client, **form).status_code == 200


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
def test_revoking_a_refresh_token_ends_the_whole_grant(
    server: Any, codes: Codes, hint: str | None
) -> None:
    t = codes.tokens()
    newer = server.token(
        server.client, grant_type="refresh_token", refresh_token=t["refresh_token"]
    ).json()
    form = {"token": newer["refresh_token"]} | ({"token_type_hint": hint} if hint else {})
    assert revoke(server, server.client, **form).status_code == 200
    assert status(server, newer["access_token"]) == 401
    assert status(server, t["access_token"]) == 401
    r = server.token(
        server.client, grant_type="refresh_token", refresh_token=newer["refresh_token"]
    )
    assert_oauth_error(r, 400, "invalid_grant")


def test_revoking_one_grant_leaves_others_alone(server: Any, codes: Codes) -> None:
    a, b = codes.tokens(), codes.tokens()
    assert revoke(server, server.client, token=a["refresh_token"]).status_code == 200
    assert status(server, a["access_token"]) == 401
    assert status(server, b["access_token"]) == 200


def test_a_client_cannot_revoke_another_clients_token(
    server: Any, codes: Codes, other_client: Any
) -> None:
    t = codes.tokens()
    for token in (t["access_token"], t["refresh_token"]):
        r = revoke(server, other_client, token=token)
        assert_oauth_error(r, 400, "unauthorized_client")
    assert status(server, t["access_token"]) == 200
    r = server.token(server.client, grant_type="refresh_token", refresh_token=t["refresh_token"])
    assert r.status_code == 200


def test_revoking_a_client_credentials_token(server: Any) -> None:
    token = server.token(server.client, grant_type="client_credentials").json()["access_token"]
    assert status(server, token) == 200
    assert revoke(server, server.client, token=token).status_code == 200
    assert status(server, token) == 401
