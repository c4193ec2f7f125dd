"""Disconnect: revoke at the provider (RFC 7009), then forget the tokens."""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import pytest
from client_fakes import KEY, FakeProvider, Harness

from consentry.client import APIError, ReauthorizationRequired, TokenSet

MakeHarness = Callable[..., Harness]


def test_disconnect_revokes_the_refresh_token_with_basic_auth_then_forgets(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    tokens = consentry_fake.seed(h.store)
    h.disconnect(key=KEY)
    (request,) = consentry_fake.requests
    assert str(request.url) == "https://api.example.test/v3/token/revoke"
    assert request.headers["Authorization"].startswith("Basic ")
    base64.b64decode(request.headers["Authorization"][6:])
    assert consentry_fake.revoked == [
        {"token": tokens.refresh_token, "token_type_hint": "refresh_token"}
    ]
    assert h.store.load(KEY) is None
    with pytest.raises(ReauthorizationRequired):
        h.get("/accounts", key=KEY)


def test_disconnect_revokes_the_access_token_when_there_is_no_refresh_token(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    h.store.save(KEY, TokenSet(access_token="a" * 40))
    h.disconnect(key=KEY)
    assert consentry_fake.revoked == [{"token": "a" * 40, "token_type_hint": "access_token"}]


def test_disconnect_from_getresponse_only_forgets_the_tokens(
    harness: MakeHarness, getresponse_fake: FakeProvider
) -> None:
    h = harness(getresponse_fake)
    getresponse_fake.seed(h.store)
    h.disconnect(key=KEY)
    assert getresponse_fake.requests == []
    assert h.store.load(KEY) is None


def test_failed_revocation_keeps_the_tokens_so_it_can_be_retried(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    tokens = consentry_fake.seed(h.store)
    real_respond = consentry_fake.respond

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/revoke"):
            return consentry_fake.error(500, 1, "Internal error")
        return real_respond(request)

    consentry_fake.respond = respond  # type: ignore[method-assign]
    with pytest.raises(APIError) as caught:
        h.disconnect(key=KEY)
    assert caught.value.http_status == 500
    assert h.store.load(KEY) == tokens


def test_disconnect_of_an_unknown_key_does_nothing(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    h.disconnect(key="nobody")
    assert consentry_fake.requests == []
