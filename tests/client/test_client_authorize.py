"""Starting authorization: presets, the authorize URL, state, PKCE and the kept object."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from client_fakes import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, s256
from hypothesis import given
from hypothesis import strategies as st

from consentry.client import AuthorizationRequest, Client, Provider, TokenSet


def query(url: str) -> dict[str, str]:
    values = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert all(len(v) == 1 for v in values.values()), "a parameter appears twice"
    return {k: v[0] for k, v in values.items()}


def test_getresponse_preset_uses_the_documented_endpoints() -> None:
    provider = Provider.getresponse()
    assert provider.authorize_url == "https://app.getresponse.com/oauth2_authorize.html"
    assert provider.token_url == "https://api.getresponse.com/v3/token"
    assert provider.api_url == "https://api.getresponse.com/v3"
    assert provider.x_domain is None and provider.revoke_url is None


@pytest.mark.parametrize("tld", ["com", "pl"])
def test_max_preset_authorizes_on_the_custom_domain_and_calls_getresponse360(tld: str) -> None:
    provider = Provider.getresponse_max("https://News.Example.com/", tld=tld)
    assert provider.authorize_url == "https://news.example.com/oauth2_authorize.html"
    assert provider.api_url == f"https://api3.getresponse360.{tld}/v3"
    assert provider.token_url == f"https://api3.getresponse360.{tld}/v3/token"
    assert provider.x_domain == "news.example.com"


@pytest.mark.parametrize("domain", ["", "example.com/path", "user@example.com", "a b.com"])
def test_max_preset_rejects_anything_but_a_bare_host(domain: str) -> None:
    with pytest.raises(ValueError):
        Provider.getresponse_max(domain)


def test_max_preset_rejects_unknown_api_tld() -> None:
    with pytest.raises(ValueError):
        Provider.getresponse_max("news.example.com", tld="de")


def test_consentry_preset_derives_every_endpoint_from_two_urls() -> None:
    provider = Provider.consentry("https://auth.example.test/", "https://api.example.test")
    assert provider.authorize_url == "https://auth.example.test/oauth2_authorize.html"
    assert provider.token_url == "https://api.example.test/v3/token"
    assert provider.revoke_url == "https://api.example.test/v3/token/revoke"
    assert provider.api_url == "https://api.example.test/v3"
    assert provider.issuer == "https://auth.example.test"
    assert provider.pkce is True


def test_consentry_preset_serves_api_from_app_url_when_api_url_is_omitted() -> None:
    provider = Provider.consentry("http://127.0.0.1:8000")
    assert provider.token_url == "http://127.0.0.1:8000/v3/token"
    assert Provider.consentry("http://h", "http://h/v3").api_url == "http://h/v3"


def test_authorize_url_carries_the_seed_parameters() -> None:
    client = Client(Provider.getresponse(), CLIENT_ID, CLIENT_SECRET, redirect_uri=REDIRECT_URI)
    auth = client.start()
    parts = urlsplit(auth.url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "app.getresponse.com",
        "/oauth2_authorize.html",
    )
    params = query(auth.url)
    assert params == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "state": auth.state,
    }
    assert auth.code_verifier is None  # GetResponse: no PKCE unless asked


def test_redirect_uri_and_scope_are_optional() -> None:
    client = Client(Provider.getresponse(), CLIENT_ID, CLIENT_SECRET)
    auth = client.start()
    assert "redirect_uri" not in query(auth.url) and auth.redirect_uri is None
    assert query(client.start(scope="read write").url)["scope"] == "read write"


def test_every_start_has_a_fresh_unguessable_state() -> None:
    client = Client(Provider.getresponse(), CLIENT_ID, CLIENT_SECRET)
    states = {client.start().state for _ in range(200)}
    assert len(states) == 200
    assert all(len(s) >= 43 for s in states)  # 32 random bytes, base64url


def test_consentry_start_sends_a_pkce_s256_challenge() -> None:
    client = Client(Provider.consentry("https://auth.example.test"), CLIENT_ID, CLIENT_SECRET)
    auth = client.start()
    params = query(auth.url)
    assert auth.code_verifier is not None
    assert 43 <= len(auth.code_verifier) <= 128  # RFC 7636 §4.1
    assert params["code_challenge_method"] == "S256"
    assert params["code_challenge"] == s256(auth.code_verifier)


def test_pkce_can_be_turned_on_for_getresponse_and_off_for_consentry() -> None:
    on = Client(Provider.getresponse(pkce=True), CLIENT_ID, CLIENT_SECRET).start()
    off = Client(Provider.consentry("https://a.test", pkce=False), CLIENT_ID, CLIENT_SECRET).start()
    assert "code_challenge" in query(on.url)
    assert "code_challenge" not in query(off.url)


def test_kept_object_survives_a_json_session() -> None:
    client = Client(Provider.consentry("https://auth.example.test"), CLIENT_ID, CLIENT_SECRET)
    auth = client.start(scope="read")
    restored = AuthorizationRequest.from_dict(json.loads(json.dumps(auth.to_dict())))
    assert restored == auth


@given(
    state=st.text(min_size=1),
    redirect=st.none() | st.text(),
    verifier=st.none() | st.text(),
    scope=st.none() | st.text(),
)
def test_kept_object_roundtrips_any_values(
    state: str, redirect: str | None, verifier: str | None, scope: str | None
) -> None:
    auth = AuthorizationRequest("https://x.test/a", state, redirect, verifier, scope)
    assert AuthorizationRequest.from_dict(auth.to_dict()) == auth


@pytest.mark.parametrize("bad", [{}, {"url": "u"}, {"url": "u", "state": 3}, {"state": "s"}])
def test_malformed_kept_object_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        AuthorizationRequest.from_dict(bad)


def test_reprs_never_show_state_verifier_tokens_or_secret() -> None:
    client = Client(Provider.consentry("https://auth.example.test"), CLIENT_ID, CLIENT_SECRET)
    auth = client.start()
    assert auth.code_verifier is not None
    assert auth.state not in repr(auth) and auth.code_verifier not in repr(auth)
    assert CLIENT_SECRET not in repr(client)
    assert all(CLIENT_SECRET not in str(v) for v in vars(client).values())
    tokens = TokenSet(access_token="A" * 40, refresh_token="R" * 40, expires_at=1.0)
    assert "A" * 40 not in repr(tokens) and "R" * 40 not in repr(tokens)
    assert "A" * 40 not in str(tokens)
