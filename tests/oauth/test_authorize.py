"""The authorization endpoint (SPEC §1.1; RFC 6749 §4.1.1-4.1.2, RFC 7636, RFC 8252, RFC 9207)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from oauth_support import (
    CALLBACK,
    HEX40,
    assert_oauth_error,
    consent_form,
    logged_in_browser,
    pkce_pair,
    redirect_params,
    signup,
)


@pytest.fixture(scope="module")
def two_uri_client(server: Any) -> Any:
    return server.new_client((CALLBACK, "https://mytemplatemaker.example.com/other"))


@pytest.fixture(scope="module")
def implicit_client(server: Any) -> Any:
    return server.new_client(("https://spa.example.com/cb",), allow_implicit=True, name="SPA")


def get_authorize(server: Any, params: Any) -> httpx.Response:
    return httpx.get(f"{server.url}/oauth2_authorize.html", params=params, timeout=30)


def assert_error_page(r: httpx.Response) -> None:
    """RFC 6749 §4.1.2.1: with an untrusted client or redirect URI, never redirect."""
    assert r.status_code == 400, r.text
    assert "location" not in r.headers
    assert r.headers["content-type"].startswith("text/html")


def assert_redirected_error(
    r: httpx.Response, server: Any, error: str, state: str | None = "s1", base: str = CALLBACK
) -> dict[str, str]:
    assert r.status_code in (302, 303), r.text
    assert r.headers["location"].startswith(base)
    q = redirect_params(r)
    assert q["error"] == error, q
    assert q["error_description"]
    assert q["iss"] == server.url
    if state is not None:
        assert q["state"] == state
    assert "code" not in q
    return q


# --- client and redirect URI: errors are pages ---------------------------------------------


def test_unknown_client_id_is_an_error_page(server: Any) -> None:
    r = get_authorize(server, {"response_type": "code", "client_id": "nope", "state": "s1"})
    assert_error_page(r)


def test_missing_client_id_is_an_error_page(server: Any) -> None:
    assert_error_page(get_authorize(server, {"response_type": "code", "state": "s1"}))


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example.com/gr_callback",
        CALLBACK + "/",
        CALLBACK + "?x=1",
        "https://mytemplatemaker.example.com:443/gr_callback",
        "HTTPS://mytemplatemaker.example.com/gr_callback",
    ],
)
def test_unregistered_redirect_uri_is_an_error_page(server: Any, uri: str) -> None:
    params = {"response_type": "code", "client_id": server.client.client_id, "redirect_uri": uri}
    assert_error_page(get_authorize(server, params | {"state": "s1"}))


def test_unregistered_redirect_uri_wins_over_other_errors(server: Any) -> None:
    params = {
        "response_type": "bogus",
        "client_id": server.client.client_id,
        "redirect_uri": "https://evil.example.com/",
        "scope": "nope",
    }
    assert_error_page(get_authorize(server, params))


def test_duplicate_client_id_is_an_error_page(server: Any) -> None:
    cid = server.client.client_id
    r = get_authorize(server, [("response_type", "code"), ("client_id", cid), ("client_id", cid)])
    assert_error_page(r)


def test_redirect_uri_may_be_omitted_with_one_registered(server: Any, user: str) -> None:
    r = server.authorize(server.client, user, state="s1")
    assert r.headers["location"].startswith(CALLBACK + "?code=")


def test_redirect_uri_is_required_with_two_registered(server: Any, two_uri_client: Any) -> None:
    params = {"response_type": "code", "client_id": two_uri_client.client_id, "state": "s1"}
    assert_error_page(get_authorize(server, params))


def test_second_registered_redirect_uri_is_used_when_named(
    server: Any, two_uri_client: Any, user: str
) -> None:
    other = "https://mytemplatemaker.example.com/other"
    r = server.authorize(two_uri_client, user, redirect_uri=other)
    assert r.headers["location"].startswith(other + "?code=")
    code = redirect_params(r)["code"]
    ok = server.token(
        two_uri_client, grant_type="authorization_code", code=code, redirect_uri=other
    )
    assert ok.status_code == 200, ok.text


def test_loopback_redirect_matches_any_port(server: Any, loopback_client: Any, user: str) -> None:
    """RFC 8252 §7.3: native apps listen on an ephemeral port of 127.0.0.1."""
    uri = "http://127.0.0.1:53123/cb"
    r = server.authorize(loopback_client, user, redirect_uri=uri)
    assert r.headers["location"].startswith(uri + "?code=")
    code = redirect_params(r)["code"]
    tok = server.token(
        loopback_client, grant_type="authorization_code", code=code, redirect_uri=uri
    )
    assert tok.status_code == 200, tok.text


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:53123/other",
        "http://127.0.0.2:53123/cb",
        "http://localhost:53123/cb",
        "http://127.0.0.1:99999/cb",
        "http://evil@127.0.0.1:53123/cb",
        "http://[::1/cb",
        "http://[::1]:53123/cb",
        "https://127.0.0.1:53123/cb",
    ],
)
def test_loopback_port_freedom_does_not_widen_the_path_or_host(
    server: Any, loopback_client: Any, uri: str
) -> None:
    params = {"response_type": "code", "client_id": loopback_client.client_id, "redirect_uri": uri}
    assert_error_page(get_authorize(server, params))


def test_port_freedom_is_only_for_loopback(server: Any) -> None:
    params = {
        "response_type": "code",
        "client_id": server.client.client_id,
        "redirect_uri": "https://mytemplatemaker.example.com:8443/gr_callback",
    }
    assert_error_page(get_authorize(server, params))


# --- other errors go back to the client -------------------------------------------------------


def base_params(server: Any, **extra: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": server.client.client_id, "state": "s1"} | extra


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"response_type": "bogus"}, "unsupported_response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"scope": "admin"}, "invalid_scope"),
        ({"scope": "account.read nope"}, "invalid_scope"),
        ({"code_challenge_method": "plain", "code_challenge": "a" * 43}, "invalid_request"),
        ({"code_challenge": "a" * 43}, "invalid_request"),
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
        ({"code_challenge": "a" * 129, "code_challenge_method": "S256"}, "invalid_request"),
        ({"code_challenge": "a" * 42 + "=", "code_challenge_method": "S256"}, "invalid_request"),
        ({"code_challenge_method": "S256"}, "invalid_request"),
    ],
)
def test_request_errors_are_redirected_with_state_and_iss(
    server: Any, extra: dict[str, str], error: str
) -> None:
    assert_redirected_error(get_authorize(server, base_params(server, **extra)), server, error)


def test_missing_response_type_is_redirected(server: Any) -> None:
    params = {"client_id": server.client.client_id, "state": "s1"}
    assert_redirected_error(get_authorize(server, params), server, "invalid_request")


@pytest.mark.parametrize("name", ["state", "scope", "response_type", "code_challenge"])
def test_duplicate_parameters_are_redirected_as_invalid_request(server: Any, name: str) -> None:
    params = list(base_params(server).items())
    value = {"scope": "account.read", "code_challenge": "a" * 43}.get(name, "code")
    if name == "state":
        value = "s1"
    params += [(name, value), (name, value)]
    if name == "code_challenge":
        params.append(("code_challenge_method", "S256"))
    q = assert_redirected_error(get_authorize(server, params), server, "invalid_request")
    assert name in q["error_description"]


def test_error_redirect_keeps_the_registered_uris_own_query(server: Any) -> None:
    query_client = server.new_client(("https://app.example.com/cb?tenant=7",))
    params = {"response_type": "bogus", "client_id": query_client.client_id, "state": "s1"}
    r = get_authorize(server, params)
    q = assert_redirected_error(
        r, server, "unsupported_response_type", base="https://app.example.com/cb?tenant=7&"
    )
    assert q["tenant"] == "7"


# --- consent, state, deny ------------------------------------------------------------------------

STATES = [
    "random_string",
    "żółć ✓ 漢字",
    "a b  c",
    "&=+%;#?/",
    "%41%zz%",
    "'\"<>`",
    "+plus+",
    "x" * 2048,
]


@pytest.mark.parametrize("state", STATES, ids=range(len(STATES)))
def test_state_is_returned_byte_for_byte(server: Any, state: str) -> None:
    email = _consented_user(server)
    r = server.authorize(server.client, email, state=state)
    q = redirect_params(r)
    assert q["state"] == state
    assert HEX40.fullmatch(q["code"])


@pytest.mark.parametrize("state", ["é&=+% '\"", "x" * 100], ids=range(2))
def test_state_is_returned_byte_for_byte_on_errors(server: Any, state: str) -> None:
    r = get_authorize(server, base_params(server, response_type="bogus", state=state))
    assert redirect_params(r)["state"] == state


_consenter: dict[str, str] = {}


def _consented_user(server: Any) -> str:
    """One account that has already allowed the shared client (shared by the state tests)."""
    if "email" not in _consenter:
        _consenter["email"] = signup(server)
        server.authorize(server.client, _consenter["email"])
    return _consenter["email"]


def test_overlong_state_is_refused(server: Any) -> None:
    r = get_authorize(server, base_params(server, state="x" * 5000))
    assert_redirected_error(r, server, "invalid_request", state=None)


def test_login_page_first_then_consent_page_names_the_app(server: Any, user: str) -> None:
    with server.browser() as b:
        r = b.get("/oauth2_authorize.html", params=base_params(server))
        assert r.status_code == 200 and 'action="/login"' in r.text
        assert "location" not in r.headers
    with logged_in_browser(server, user) as b:
        page = b.get("/oauth2_authorize.html", params=base_params(server))
        consent_form(page)
        assert "MyTemplateMaker" in page.text
        assert 'name="decision"' in page.text


def test_deny_redirects_access_denied_with_state_and_iss(server: Any, user: str) -> None:
    r = server.authorize(server.client, user, decision="deny", state="s1")
    assert r.status_code == 303
    assert_redirected_error(r, server, "access_denied")


def test_deny_does_not_remember_consent(server: Any, user: str) -> None:
    server.authorize(server.client, user, decision="deny")
    with logged_in_browser(server, user) as b:
        consent_form(b.get("/oauth2_authorize.html", params=base_params(server)))


def test_allow_redirects_with_code_state_and_iss(server: Any, user: str) -> None:
    r = server.authorize(server.client, user, state="s1")
    assert r.status_code == 303
    q = redirect_params(r)
    assert q == {"code": q["code"], "state": "s1", "iss": server.url}


def test_consent_is_remembered_for_the_same_client_and_scope(server: Any, user: str) -> None:
    server.authorize(server.client, user, scope="account.read")
    with logged_in_browser(server, user) as b:
        r = b.get("/oauth2_authorize.html", params=base_params(server, scope="account.read"))
        assert r.status_code in (302, 303), "the consent page was shown again"
        q = redirect_params(r)
        assert HEX40.fullmatch(q["code"]) and q["state"] == "s1" and q["iss"] == server.url
        tok = server.token(server.client, grant_type="authorization_code", code=q["code"])
        assert tok.status_code == 200 and tok.json()["scope"] == "account.read"
        # Asking for more than was granted brings the consent page back.
        page = b.get("/oauth2_authorize.html", params=base_params(server))
        consent_form(page)


def test_consent_of_one_client_is_not_consent_for_another(
    server: Any, other_client: Any, user: str
) -> None:
    server.authorize(server.client, user)
    with logged_in_browser(server, user) as b:
        params = base_params(server) | {"client_id": other_client.client_id}
        consent_form(b.get("/oauth2_authorize.html", params=params))


def test_consent_form_answers_once(server: Any, user: str) -> None:
    with logged_in_browser(server, user) as b:
        form = consent_form(b.get("/oauth2_authorize.html", params=base_params(server)))
        first = b.post("/oauth2_authorize.html", data=form | {"decision": "allow"})
        assert first.status_code == 303 and "code" in redirect_params(first)
        again = b.post("/oauth2_authorize.html", data=form | {"decision": "allow"})
        assert again.status_code == 400 and "location" not in again.headers


def test_consent_post_needs_the_csrf_token(server: Any, user: str) -> None:
    with logged_in_browser(server, user) as b:
        form = consent_form(b.get("/oauth2_authorize.html", params=base_params(server)))
        r = b.post(
            "/oauth2_authorize.html",
            data={"request_id": form["request_id"], "decision": "allow", "csrf_token": "x"},
        )
        assert r.status_code == 403 and "location" not in r.headers


# --- the code ------------------------------------------------------------------------------------


def test_code_expires_after_its_lifetime(code_ttl_server: Any) -> None:
    s = code_ttl_server
    code = s.code_for(s.client, signup(s))
    time.sleep(2.1)
    r = s.token(s.client, grant_type="authorization_code", code=code)
    body = assert_oauth_error(r, 400, "invalid_grant")
    assert "expired" in body["error_description"]


def test_code_is_bound_to_scope_and_pkce(server: Any, user: str) -> None:
    verifier, challenge = pkce_pair()
    code = server.code_for(
        server.client,
        user,
        scope="from-fields.read",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    r = server.token(
        server.client, grant_type="authorization_code", code=code, code_verifier=verifier
    )
    assert r.status_code == 200 and r.json()["scope"] == "from-fields.read"
    token = r.json()["access_token"]
    assert server.api("GET", "/v3/from-fields", token).status_code == 200
    assert server.api("GET", "/v3/accounts", token).status_code == 403


# --- implicit (compatibility only) -------------------------------------------------------------


def test_implicit_grant_is_off_by_default(server: Any) -> None:
    r = get_authorize(server, base_params(server, response_type="token"))
    assert r.status_code in (302, 303)
    fragment = urlsplit(r.headers["location"]).fragment
    assert "error=unauthorized_client" in fragment
    q = redirect_params(r)
    assert q["error"] == "unauthorized_client" and q["state"] == "s1"
    assert "access_token" not in q


def test_implicit_grant_when_enabled_returns_token_in_fragment(
    server: Any, implicit_client: Any, user: str
) -> None:
    r = server.authorize(implicit_client, user, response_type="token", state="s 1")
    loc = r.headers["location"]
    parts = urlsplit(loc)
    assert loc.startswith("https://spa.example.com/cb#") and not parts.query
    q = redirect_params(r)
    assert HEX40.fullmatch(q["access_token"])
    assert q["token_type"] == "bearer"
    assert q["expires_in"] == "3600"
    assert q["state"] == "s 1"
    assert "refresh_token" not in q and "code" not in q
    assert server.api("GET", "/v3/accounts", q["access_token"]).json()["email"] == user


def test_implicit_client_still_gets_codes_for_response_type_code(
    server: Any, implicit_client: Any, user: str
) -> None:
    r = server.authorize(implicit_client, user)
    assert "code" in redirect_params(r)
    assert "#" not in r.headers["location"]


def test_without_state_the_redirect_has_none(server: Any, codes: Any) -> None:
    codes()  # this account has allowed the client before
    params = {"response_type": "code", "client_id": server.client.client_id}
    r = codes.browser.get("/oauth2_authorize.html", params=params)
    assert r.status_code in (302, 303)
    q = redirect_params(r)
    assert set(q) == {"code", "iss"}
    err = codes.browser.get("/oauth2_authorize.html", params=params | {"scope": "nope"})
    assert set(redirect_params(err)) == {"error", "error_description", "iss"}
