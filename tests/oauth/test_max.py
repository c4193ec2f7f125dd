"""GetResponse MAX: a custom domain for authorization, ``X-Domain`` on token and API calls."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from oauth_support import assert_gr_error, assert_oauth_error, redirect_params


@pytest.fixture(scope="module")
def max_setup(server: Any) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """A MAX account on its own domain, an app registered inside it, and its tokens."""
    domain = f"max{secrets.token_hex(4)}.example.com"
    owner = server.new_user("Max Owner", max_domain=domain)
    client = server.new_client(owner=owner, name="Max App")
    with httpx.Client(
        base_url=server.url, headers={"Host": domain}, follow_redirects=False, timeout=30
    ) as b:
        r = server.authorize(client, owner, browser=b)
    assert r.status_code in (302, 303), r.text
    q = redirect_params(r)
    tok = httpx.post(
        f"{server.url}/v3/token",
        auth=client.auth,
        headers={"X-Domain": domain},
        data={"grant_type": "authorization_code", "code": q["code"]},
    )
    assert tok.status_code == 200, tok.text
    yield domain, client, tok.json()


def test_max_app_is_authorized_only_on_its_domain(server: Any, max_setup: Any) -> None:
    domain, client, _ = max_setup
    r = httpx.get(
        f"{server.url}/oauth2_authorize.html",
        params={"response_type": "code", "client_id": client.client_id, "state": "s"},
    )
    assert r.status_code == 400 and "location" not in r.headers
    assert domain in r.text


def test_max_token_requests_need_x_domain(server: Any, max_setup: Any) -> None:
    domain, client, tokens = max_setup
    form = {"grant_type": "client_credentials"}
    assert_oauth_error(server.token(client, **form), 401, "invalid_client")
    wrong = httpx.post(
        f"{server.url}/v3/token", auth=client.auth, headers={"X-Domain": "other.com"}, data=form
    )
    assert_oauth_error(wrong, 401, "invalid_client")
    ok = httpx.post(
        f"{server.url}/v3/token", auth=client.auth, headers={"X-Domain": domain}, data=form
    )
    assert ok.status_code == 200, ok.text


def test_max_api_calls_need_x_domain(server: Any, max_setup: Any) -> None:
    domain, _, tokens = max_setup
    token = tokens["access_token"]
    assert_gr_error(server.api("GET", "/v3/accounts", token), 401, 1014)
    wrong = server.api("GET", "/v3/accounts", token, headers={"X-Domain": "other.com"})
    assert_gr_error(wrong, 401, 1014)
    ok = server.api("GET", "/v3/from-fields", token, headers={"X-Domain": domain.upper()})
    assert ok.status_code == 200, ok.text


def test_x_domain_on_a_standard_account_is_refused(server: Any, codes: Any) -> None:
    token = codes.tokens()["access_token"]
    r = server.api("GET", "/v3/accounts", token, headers={"X-Domain": "max.example.com"})
    assert_gr_error(r, 401, 1014)
    r = httpx.post(
        f"{server.url}/v3/token",
        auth=server.client.auth,
        headers={"X-Domain": "max.example.com"},
        data={"grant_type": "client_credentials"},
    )
    assert_oauth_error(r, 401, "invalid_client")
