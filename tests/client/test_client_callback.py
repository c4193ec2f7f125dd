"""The callback: state, errors, issuer, and the code exchange with HTTP Basic."""

from __future__ import annotations

import base64
from collections.abc import Callable
from urllib.parse import unquote_plus, urlencode

import pytest
from client_fakes import (
    CLIENT_ID,
    CLIENT_SECRET,
    KEY,
    REDIRECT_URI,
    FakeProvider,
    Harness,
    s256,
)
from hypothesis import given
from hypothesis import strategies as st

from consentry.client import (
    AccessDenied,
    APIError,
    AuthorizationError,
    Provider,
    StateMismatch,
)
from consentry.client._core import basic_auth

MakeHarness = Callable[..., Harness]


def allow(fake: FakeProvider, h: Harness) -> tuple[object, dict[str, str]]:
    """Start, then play the provider's "Allow": return the kept object and callback params."""
    auth = h.start()
    challenge = None
    if auth.code_verifier is not None:
        challenge = s256(auth.code_verifier)
    code = fake.issue_code(auth.redirect_uri, challenge)
    params = {"code": code, "state": auth.state}
    if fake.provider.issuer:
        params["iss"] = fake.provider.issuer
    return auth, params


def test_exchange_uses_basic_auth_and_sends_what_was_sent_before(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake, clock=lambda: 1_000_000.0)
    auth, params = allow(consentry_fake, h)
    tokens = h.handle_callback(params, auth, key=KEY)

    (request,) = consentry_fake.requests
    scheme, _, value = request.headers["Authorization"].partition(" ")
    user, _, password = base64.b64decode(value).decode().partition(":")
    assert scheme == "Basic"
    assert ":" not in user  # RFC 6749 §2.3.1: the id's colon is percent-encoded
    assert (unquote_plus(user), unquote_plus(password)) == (CLIENT_ID, CLIENT_SECRET)
    form = consentry_fake.token_forms()[0]
    assert form == {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": REDIRECT_URI,
        "code_verifier": auth.code_verifier,  # type: ignore[attr-defined]
    }
    assert "client_secret" not in form
    assert tokens.expires_at == 1_000_000.0 + 3600
    assert tokens.token_type == "Bearer" and tokens.scope is None
    assert h.store.load(KEY) == tokens


def test_exchange_like_the_seed_when_no_redirect_uri_was_sent(harness: MakeHarness) -> None:
    fake = FakeProvider(Provider.getresponse(), style="getresponse")
    h = harness(fake, redirect_uri=None)
    auth, params = allow(fake, h)
    h.handle_callback(params, auth, key=KEY)
    assert fake.token_forms() == [{"grant_type": "authorization_code", "code": params["code"]}]


def test_kept_object_may_come_back_as_a_session_dict(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    auth, params = allow(consentry_fake, h)
    h.handle_callback(params, auth.to_dict(), key=KEY)  # type: ignore[attr-defined]
    assert h.store.load(KEY) is not None


def test_callback_may_be_given_as_the_full_url(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    auth, params = allow(consentry_fake, h)
    h.handle_callback(f"{REDIRECT_URI}?{urlencode(params)}", auth, key=KEY)
    assert h.store.load(KEY) is not None


def test_duplicated_callback_parameter_is_refused(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    auth, params = allow(consentry_fake, h)
    url = f"{REDIRECT_URI}?{urlencode(params)}&code=other"
    with pytest.raises(AuthorizationError) as caught:
        h.handle_callback(url, auth, key=KEY)
    assert caught.value.error == "invalid_request"
    assert consentry_fake.requests == []


@pytest.mark.parametrize("state", [None, "", "forged", "x" * 43])
def test_state_mismatch_stops_before_any_request(
    harness: MakeHarness, consentry_fake: FakeProvider, state: str | None
) -> None:
    h = harness(consentry_fake)
    auth, params = allow(consentry_fake, h)
    if state is None:
        del params["state"]
    else:
        params["state"] = state
    with pytest.raises(StateMismatch):
        h.handle_callback(params, auth, key=KEY)
    assert consentry_fake.requests == []
    assert h.store.load(KEY) is None


def test_state_from_another_start_does_not_match(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    auth, params = allow(consentry_fake, h)
    other = h.start()
    with pytest.raises(StateMismatch):
        h.handle_callback(params, other, key=KEY)


def test_access_denied_is_its_own_exception(
    harness: MakeHarness, getresponse_fake: FakeProvider
) -> None:
    h = harness(getresponse_fake)
    auth = h.start()
    params = {"error": "access_denied", "error_description": "User said no", "state": auth.state}
    with pytest.raises(AccessDenied) as caught:
        h.handle_callback(params, auth, key=KEY)
    assert caught.value.error == "access_denied"
    assert caught.value.error_description == "User said no"
    assert getresponse_fake.requests == []


def test_other_errors_carry_error_and_description(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    auth = h.start()
    params = {
        "error": "invalid_scope",
        "error_description": "unknown scope",
        "state": auth.state,
        "iss": consentry_fake.provider.issuer or "",
    }
    with pytest.raises(AuthorizationError) as caught:
        h.handle_callback(params, auth, key=KEY)
    assert not isinstance(caught.value, AccessDenied)
    assert (caught.value.error, caught.value.error_description) == (
        "invalid_scope",
        "unknown scope",
    )


def test_error_callback_with_a_forged_state_is_a_state_mismatch(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    auth = h.start()
    with pytest.raises(StateMismatch):
        h.handle_callback({"error": "access_denied", "state": "forged"}, auth, key=KEY)


def test_missing_code_is_an_error(harness: MakeHarness, consentry_fake: FakeProvider) -> None:
    h = harness(consentry_fake)
    auth = h.start()
    with pytest.raises(AuthorizationError) as caught:
        h.handle_callback({"state": auth.state}, auth, key=KEY)
    assert caught.value.error == "invalid_request"
    assert consentry_fake.requests == []


def test_callback_from_another_issuer_is_refused(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    auth, params = allow(consentry_fake, h)
    params["iss"] = "https://evil.example.test"
    with pytest.raises(AuthorizationError) as caught:
        h.handle_callback(params, auth, key=KEY)
    assert caught.value.error == "invalid_issuer"
    assert consentry_fake.requests == []


def test_getresponse_format_token_error_is_an_api_error(
    harness: MakeHarness, getresponse_fake: FakeProvider
) -> None:
    h = harness(getresponse_fake)
    auth = h.start()
    with pytest.raises(APIError) as caught:
        h.handle_callback({"code": "spent", "state": auth.state}, auth, key=KEY)
    error = caught.value
    assert (error.http_status, error.code, error.error) == (400, 1000, None)
    assert error.message == "Invalid authorization code"
    assert error.context == {}  # GetResponse's empty context is []
    assert error.uuid and error.more_info and error.code_description
    assert h.store.load(KEY) is None


def test_consentry_token_error_carries_both_formats(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    auth = h.start()
    params = {"code": "spent", "state": auth.state, "iss": "https://auth.example.test"}
    with pytest.raises(APIError) as caught:
        h.handle_callback(params, auth, key=KEY)
    assert caught.value.error == "invalid_grant"
    assert caught.value.error_description == "Invalid authorization code"
    assert caught.value.code == 1000


@given(client_id=st.text(min_size=1), secret=st.text())
def test_basic_credentials_decode_back_to_the_originals(client_id: str, secret: str) -> None:
    scheme, _, value = basic_auth(client_id, secret).partition(" ")
    user, sep, password = base64.b64decode(value).decode().partition(":")
    assert scheme == "Basic" and sep == ":"
    assert (unquote_plus(user), unquote_plus(password)) == (client_id, secret)


def test_callback_without_a_pending_request_is_a_state_mismatch(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    with pytest.raises(StateMismatch):
        h.handle_callback({"code": "c", "state": "s"}, None, key=KEY)
    assert consentry_fake.requests == []
