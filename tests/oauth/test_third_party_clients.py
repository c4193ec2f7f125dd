"""OAuth libraries nobody here wrote complete the flow against consentry unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from authlib.integrations.requests_client import OAuthError
from oauth_support import CALLBACK, logged_in_browser, signup
from oauthlib.oauth2.rfc6749.errors import InvalidGrantError
from requests_oauthlib import OAuth2Session as RequestsOAuthSession


def callback_url(server: Any, browser: Any, authorize_url: str) -> str:
    """What the user's browser lands on after Allow."""
    r = browser.get(authorize_url)
    if r.status_code == 200:
        from oauth_support import consent_form

        r = browser.post("/oauth2_authorize.html", data=consent_form(r) | {"decision": "allow"})
    assert r.status_code in (302, 303), r.text
    loc = r.headers["location"]
    assert loc.startswith(CALLBACK)
    return str(loc)


def test_authlib_fetches_refreshes_and_calls_the_api(server: Any) -> None:
    c = server.client
    token_url = f"{server.url}/v3/token"
    session = AuthlibSession(
        c.client_id,
        c.client_secret,
        token_endpoint_auth_method="client_secret_basic",
        code_challenge_method="S256",
    )
    auth_url, state = session.create_authorization_url(
        f"{server.url}/oauth2_authorize.html", code_verifier="v" * 64
    )
    with logged_in_browser(server, signup(server)) as b:
        callback = callback_url(server, b, auth_url)

    token = session.fetch_token(
        token_url, authorization_response=callback, state=state, code_verifier="v" * 64
    )
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    assert token["expires_at"] > 0 and token["refresh_token"]
    r = session.get(f"{server.url}/v3/from-fields")
    assert r.status_code == 200, r.text

    refreshed = session.refresh_token(token_url, refresh_token=token["refresh_token"])
    assert refreshed["access_token"] != token["access_token"]
    assert session.get(f"{server.url}/v3/accounts").status_code == 200

    with pytest.raises(OAuthError) as exc:
        session.fetch_token(token_url, authorization_response=callback, state=state)
    assert exc.value.error == "invalid_grant"


def test_authlib_with_client_secret_post(server: Any) -> None:
    c = server.client
    session = AuthlibSession(
        c.client_id, c.client_secret, token_endpoint_auth_method="client_secret_post"
    )
    auth_url, state = session.create_authorization_url(f"{server.url}/oauth2_authorize.html")
    with logged_in_browser(server, signup(server)) as b:
        callback = callback_url(server, b, auth_url)
    token = session.fetch_token(
        f"{server.url}/v3/token", authorization_response=callback, state=state
    )
    assert token["scope"] is None and token["access_token"]


def test_authlib_raises_on_an_unknown_refresh_token(server: Any) -> None:
    c = server.client
    session = AuthlibSession(c.client_id, c.client_secret)
    with pytest.raises(OAuthError) as exc:
        session.refresh_token(f"{server.url}/v3/token", refresh_token="0" * 40)
    assert exc.value.error == "invalid_grant"


def test_requests_oauthlib_fetches_and_refreshes(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the test server is plain http
    c = server.client
    token_url = f"{server.url}/v3/token"
    session = RequestsOAuthSession(c.client_id)
    auth_url, state = session.authorization_url(f"{server.url}/oauth2_authorize.html")
    with logged_in_browser(server, signup(server)) as b:
        callback = callback_url(server, b, auth_url)

    token = session.fetch_token(
        token_url, authorization_response=callback, client_secret=c.client_secret
    )
    assert token["token_type"] == "Bearer" and token["refresh_token"]
    assert session.get(f"{server.url}/v3/accounts").status_code == 200

    new = session.refresh_token(token_url, auth=c.auth)
    assert new["access_token"] != token["access_token"]
    assert session.get(f"{server.url}/v3/from-fields").status_code == 200

    with pytest.raises(InvalidGrantError):
        session.fetch_token(
            token_url, authorization_response=callback, client_secret=c.client_secret
        )


def test_requests_oauthlib_raises_invalid_grant_for_a_bad_refresh_token(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    c = server.client
    session = RequestsOAuthSession(c.client_id)
    with pytest.raises(InvalidGrantError):
        session.refresh_token(f"{server.url}/v3/token", refresh_token="0" * 40, auth=c.auth)
