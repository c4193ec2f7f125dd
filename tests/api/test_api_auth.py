"""The bearer guard of /v3 (SPEC §1.3; RFC 6750) with GetResponse's 1014 answers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api_support import Account, assert_gr_error

PATHS = ["/v3/accounts", "/v3/from-fields"]


@pytest.mark.parametrize("path", PATHS)
def test_missing_token_is_401_1014_with_a_bearer_challenge(server: Any, path: str) -> None:
    r = httpx.get(f"{server.url}{path}")
    body = assert_gr_error(r, 401, 1014)
    assert body["codeDescription"] == "Problem during authentication process, check headers!"
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_unknown_token_is_401_naming_the_sent_token(server: Any) -> None:
    r = server.api("GET", "/v3/accounts", "0" * 40)
    body = assert_gr_error(r, 401, 1014)
    assert body["context"] == {"sentToken": "0" * 40}
    assert "expired" not in body["message"]
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_token_in_the_query_string_is_refused(server: Any, account: Account) -> None:
    r = httpx.get(f"{server.url}/v3/accounts", params={"access_token": account.token})
    assert_gr_error(r, 401, 1014)
    assert "header" in r.json()["message"].lower()


def test_token_in_a_form_body_is_refused(server: Any, account: Account) -> None:
    r = httpx.post(f"{server.url}/v3/from-fields", data={"access_token": account.token})
    assert_gr_error(r, 401, 1014)


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ,", "Basic abc", "Token abc", "bearer", "Bearer a b", "Bearer " + "a" * 600],
)
def test_malformed_authorization_header_is_401(server: Any, header: str) -> None:
    r = httpx.get(f"{server.url}/v3/accounts", headers={"Authorization": header})
    assert_gr_error(r, 401, 1014)
    assert "invalid_token" in r.headers["www-authenticate"]


def test_scheme_is_case_insensitive(server: Any, account: Account) -> None:
    r = httpx.get(f"{server.url}/v3/accounts", headers={"Authorization": f"bearer {account.token}"})
    assert r.status_code == 200


def test_revoked_token_is_401(server: Any, account: Account) -> None:
    c = server.client
    httpx.post(f"{server.url}/v3/token/revoke", auth=c.auth, data={"token": account.token})
    body = assert_gr_error(account.call("GET", "/v3/accounts"), 401, 1014)
    assert body["context"]["sentToken"] == account.token
    assert "revoked" in body["message"]


def test_a_refresh_token_is_not_a_bearer_token(server: Any, account: Account) -> None:
    r = server.api("GET", "/v3/accounts", account.tokens["refresh_token"])
    assert_gr_error(r, 401, 1014)


def test_insufficient_scope_is_403(server: Any, make_account: Any) -> None:
    acct = make_account(scope="account.read")
    assert acct.call("GET", "/v3/accounts").status_code == 200
    r = acct.call("GET", "/v3/from-fields")
    assert_gr_error(r, 403, 1014)
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    r = acct.create("x@example.com")
    assert r.status_code == 403


def test_read_scope_cannot_write(server: Any, make_account: Any) -> None:
    acct = make_account(scope="from-fields.read")
    assert acct.call("GET", "/v3/from-fields").status_code == 200
    assert acct.create("y@example.com").status_code == 403


def test_every_error_uuid_is_the_request_id(server: Any, account: Account) -> None:
    answers = [
        httpx.get(f"{server.url}/v3/accounts"),
        account.call("GET", "/v3/from-fields/nope"),
        account.call("GET", "/v3/from-fields", params={"perPage": "0"}),
        httpx.get(f"{server.url}/v3/unknown"),
        httpx.post(f"{server.url}/v3/token", data={"grant_type": "x"}),
    ]
    uuids = set()
    for r in answers:
        assert 400 <= r.status_code < 500
        body = r.json()
        assert body["uuid"] == r.headers["x-request-id"]
        uuids.add(body["uuid"])
    assert len(uuids) == len(answers)


def test_successful_responses_carry_a_request_id(account: Account) -> None:
    r = account.call("GET", "/v3/accounts")
    assert r.status_code == 200 and len(r.headers["x-request-id"]) >= 16
