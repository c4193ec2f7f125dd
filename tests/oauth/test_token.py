"""The token endpoint ``POST /v3/token`` (SPEC §1.2; RFC 6749 §2.3.1, §4.1.3, §4.4; RFC 7636)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from oauth_support import (
    CALLBACK,
    HEX40,
    assert_oauth_error,
    pkce_pair,
    redirect_params,
)


def post_token(server: Any, **kw: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/v3/token", timeout=30, **kw)


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def assert_tokens_work(server: Any, body: dict[str, Any], email: str | None = None) -> None:
    r = server.api("GET", "/v3/accounts", body["access_token"])
    assert r.status_code == 200, r.text
    if email is not None:
        assert r.json()["email"] == email


# --- client authentication ------------------------------------------------------------------


def test_basic_auth_exchanges_a_code(server: Any, codes: Any) -> None:
    code = codes()
    r = post_token(
        server, auth=server.client.auth, data={"grant_type": "authorization_code", "code": code}
    )
    assert r.status_code == 200
    assert_tokens_work(server, r.json(), codes.email)


def test_basic_credentials_are_form_urlencoded_before_base64(server: Any, codes: Any) -> None:
    """RFC 6749 §2.3.1: the server decodes the id and secret after base64."""
    c = server.client
    every_char = "".join(f"%{b:02X}" for b in c.client_id.encode())
    code = codes()
    r = post_token(
        server,
        headers=basic(every_char, quote(c.client_secret, safe="")),
        data={"grant_type": "authorization_code", "code": code},
    )
    assert r.status_code == 200, r.text


def test_body_credentials_exchange_a_code(server: Any, codes: Any) -> None:
    c = server.client
    code = codes()
    r = post_token(
        server,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": c.client_id,
            "client_secret": c.client_secret,
        },
    )
    assert r.status_code == 200, r.text
    assert_tokens_work(server, r.json(), codes.email)


def test_client_id_in_body_beside_basic_is_allowed_when_equal(server: Any, codes: Any) -> None:
    c = server.client
    code = codes()
    r = server.token(c, grant_type="authorization_code", code=code, client_id=c.client_id)
    assert r.status_code == 200, r.text


def test_two_authentication_methods_at_once_are_refused(server: Any) -> None:
    c = server.client
    r = server.token(c, grant_type="client_credentials", client_secret=c.client_secret)
    assert_oauth_error(r, 400, "invalid_request")


def test_client_id_in_body_differing_from_basic_is_refused(server: Any, other_client: Any) -> None:
    r = server.token(
        server.client, grant_type="client_credentials", client_id=other_client.client_id
    )
    assert_oauth_error(r, 400, "invalid_request")


def test_no_client_authentication_is_invalid_client(server: Any) -> None:
    r = post_token(server, data={"grant_type": "client_credentials"})
    assert_oauth_error(r, 401, "invalid_client")
    r = post_token(
        server, data={"grant_type": "client_credentials", "client_id": server.client.client_id}
    )
    assert_oauth_error(r, 401, "invalid_client")


def test_wrong_secret_is_invalid_client(server: Any) -> None:
    c = server.client
    r = post_token(
        server,
        auth=(c.client_id, c.client_secret[:-1] + "x"),
        data={"grant_type": "client_credentials"},
    )
    body = assert_oauth_error(r, 401, "invalid_client")
    assert body["code"] == 1014 and body["httpStatus"] == 401
    r = post_token(
        server,
        data={"grant_type": "client_credentials", "client_id": c.client_id, "client_secret": "x"},
    )
    assert_oauth_error(r, 401, "invalid_client")


def test_unknown_client_is_invalid_client(server: Any) -> None:
    r = post_token(server, auth=("nobody", "secret"), data={"grant_type": "client_credentials"})
    assert_oauth_error(r, 401, "invalid_client")


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic  =",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + base64.b64encode(b"id:secret").decode() + "===",
        "Bearer abc",
        "Digest username=x",
        "Basic " + base64.b64encode(b"x" * 300 + b":" + b"y" * 300).decode(),
        "Basic " + base64.b64encode(b"%00:secret").decode(),
        "Basic " + base64.b64encode(b"id\x00:secret").decode(),
    ],
)
def test_malformed_basic_is_invalid_client(server: Any, header: str) -> None:
    r = post_token(
        server, headers={"Authorization": header}, data={"grant_type": "client_credentials"}
    )
    assert_oauth_error(r, 401, "invalid_client")


def test_error_bodies_carry_rfc_and_getresponse_members(server: Any) -> None:
    r = server.token(server.client, grant_type="authorization_code", code="0" * 40)
    body = assert_oauth_error(r, 400, "invalid_grant")
    assert body["code"] == 1000 and body["message"] == body["error_description"]
    assert body["codeDescription"] and body["moreInfo"].endswith("/errors/1000")


# --- authorization_code ---------------------------------------------------------------------


def test_missing_code_is_invalid_request(server: Any) -> None:
    assert_oauth_error(
        server.token(server.client, grant_type="authorization_code"), 400, "invalid_request"
    )


def test_unknown_code_is_invalid_grant(server: Any) -> None:
    r = server.token(server.client, grant_type="authorization_code", code="nope")
    assert_oauth_error(r, 400, "invalid_grant")


def test_redirect_uri_sent_to_authorize_is_required_at_token(server: Any, codes: Any) -> None:
    c = server.client
    code = codes(redirect_uri=CALLBACK)
    r = server.token(c, grant_type="authorization_code", code=code)
    assert_oauth_error(r, 400, "invalid_grant")


@pytest.mark.parametrize("sent", [CALLBACK + "/", CALLBACK.upper(), CALLBACK + "?a=1", "x"])
def test_redirect_uri_must_be_identical(server: Any, codes: Any, sent: str) -> None:
    c = server.client
    code = codes(redirect_uri=CALLBACK)
    r = server.token(c, grant_type="authorization_code", code=code, redirect_uri=sent)
    assert_oauth_error(r, 400, "invalid_grant")


def test_identical_redirect_uri_exchanges(server: Any, codes: Any) -> None:
    c = server.client
    code = codes(redirect_uri=CALLBACK)
    r = server.token(c, grant_type="authorization_code", code=code, redirect_uri=CALLBACK)
    assert r.status_code == 200, r.text


def test_redirect_uri_not_sent_to_authorize_is_optional_but_checked(
    server: Any, codes: Any
) -> None:
    c = server.client
    code = codes()
    bad = server.token(
        c, grant_type="authorization_code", code=code, redirect_uri="https://x.example/"
    )
    assert_oauth_error(bad, 400, "invalid_grant")
    code = codes()
    ok = server.token(c, grant_type="authorization_code", code=code, redirect_uri=CALLBACK)
    assert ok.status_code == 200, ok.text


@pytest.fixture
def pkce_code(server: Any, codes: Any) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    code = codes(code_challenge=challenge, code_challenge_method="S256")
    return code, verifier


def test_pkce_s256_with_the_right_verifier_exchanges(server: Any, pkce_code: Any) -> None:
    code, verifier = pkce_code
    r = server.token(
        server.client, grant_type="authorization_code", code=code, code_verifier=verifier
    )
    assert r.status_code == 200, r.text


def test_pkce_wrong_verifier_is_invalid_grant(server: Any, pkce_code: Any) -> None:
    code, _ = pkce_code
    other, _ = pkce_pair()
    r = server.token(server.client, grant_type="authorization_code", code=code, code_verifier=other)
    assert_oauth_error(r, 400, "invalid_grant")


def test_pkce_missing_verifier_is_invalid_grant(server: Any, pkce_code: Any) -> None:
    code, _ = pkce_code
    r = server.token(server.client, grant_type="authorization_code", code=code)
    assert_oauth_error(r, 400, "invalid_grant")


def test_pkce_malformed_verifier_is_refused(server: Any, pkce_code: Any) -> None:
    code, _ = pkce_code
    r = server.token(
        server.client, grant_type="authorization_code", code=code, code_verifier="short"
    )
    assert r.status_code == 400 and r.json()["error"] in ("invalid_request", "invalid_grant")


def test_verifier_without_challenge_is_invalid_grant(server: Any, codes: Any) -> None:
    """RFC 9700 §2.1.1: stops PKCE downgrade (a verifier for a code issued without one)."""
    verifier, _ = pkce_pair()
    code = codes()
    r = server.token(
        server.client, grant_type="authorization_code", code=code, code_verifier=verifier
    )
    assert_oauth_error(r, 400, "invalid_grant")


def test_code_replay_fails_and_revokes_what_the_code_issued(server: Any, codes: Any) -> None:
    c = server.client
    code = codes()
    first = server.token(c, grant_type="authorization_code", code=code)
    assert first.status_code == 200
    tokens = first.json()
    assert_tokens_work(server, tokens)

    assert_oauth_error(
        server.token(c, grant_type="authorization_code", code=code), 400, "invalid_grant"
    )

    r = server.api("GET", "/v3/accounts", tokens["access_token"])
    assert r.status_code == 401 and r.json()["code"] == 1014
    refresh = server.token(c, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert_oauth_error(refresh, 400, "invalid_grant")


def test_code_replay_also_revokes_tokens_refreshed_from_it(server: Any, codes: Any) -> None:
    c = server.client
    code = codes()
    tokens = server.token(c, grant_type="authorization_code", code=code).json()
    later = server.token(
        c, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    ).json()
    assert_tokens_work(server, later)
    server.token(c, grant_type="authorization_code", code=code)
    assert server.api("GET", "/v3/accounts", later["access_token"]).status_code == 401


def test_another_client_can_neither_redeem_nor_burn_a_code(
    server: Any, other_client: Any, codes: Any
) -> None:
    code = codes()
    stolen = server.token(other_client, grant_type="authorization_code", code=code)
    assert_oauth_error(stolen, 400, "invalid_grant")
    again = server.token(other_client, grant_type="authorization_code", code=code)
    assert_oauth_error(again, 400, "invalid_grant")
    r = server.token(server.client, grant_type="authorization_code", code=code)
    assert r.status_code == 200, r.text
    assert_tokens_work(server, r.json(), codes.email)


def test_each_exchange_issues_distinct_random_tokens(server: Any, codes: Any) -> None:
    seen: set[str] = set()
    for _ in range(3):
        body = codes.tokens()
        for key in ("access_token", "refresh_token"):
            assert HEX40.fullmatch(body[key])
            seen.add(body[key])
    assert len(seen) == 6


# --- client_credentials and unknown grants --------------------------------------------------------


def test_client_credentials_token_is_for_the_developers_own_account(server: Any) -> None:
    r = server.token(server.client, grant_type="client_credentials")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert set(body) == {"access_token", "expires_in", "token_type", "scope"}
    assert body["expires_in"] == 86400 and body["token_type"] == "Bearer" and body["scope"] is None
    assert HEX40.fullmatch(body["access_token"])
    assert_tokens_work(server, body, server.developer)


def test_client_credentials_with_a_narrower_scope(server: Any) -> None:
    r = server.token(server.client, grant_type="client_credentials", scope="account.read")
    assert r.status_code == 200 and r.json()["scope"] == "account.read"
    assert server.api("GET", "/v3/from-fields", r.json()["access_token"]).status_code == 403
    bad = server.token(server.client, grant_type="client_credentials", scope="root")
    assert_oauth_error(bad, 400, "invalid_scope")


@pytest.mark.parametrize(
    "grant", ["password", "implicit", "urn:ietf:params:oauth:grant-type:jwt-bearer", "x" * 500]
)
def test_unsupported_grant_type(server: Any, grant: str) -> None:
    r = server.token(server.client, grant_type=grant, username="a", password="b")
    assert_oauth_error(r, 400, "unsupported_grant_type")


def test_missing_grant_type_is_invalid_request(server: Any) -> None:
    assert_oauth_error(server.token(server.client), 400, "invalid_request")


def test_token_endpoint_only_takes_post(server: Any) -> None:
    r = httpx.get(f"{server.url}/v3/token", params={"grant_type": "client_credentials"})
    assert r.status_code == 405
    assert r.json()["httpStatus"] == 405


def test_parameters_in_the_url_are_refused(server: Any) -> None:
    r = post_token(
        server,
        auth=server.client.auth,
        params={"code": "abc"},
        data={"grant_type": "client_credentials"},
    )
    assert_oauth_error(r, 400, "invalid_request")


def test_callback_location_from_a_real_authorization(server: Any, codes: Any) -> None:
    """The callback carries nothing but code, state and iss."""
    r = server.authorize(server.client, codes.email)
    assert set(redirect_params(r)) == {"code", "state", "iss"}
