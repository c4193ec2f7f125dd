"""API calls: bearer, refresh before expiry and on 401/403-1014, re-authorization, 429, MAX."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest
from client_fakes import CLIENT_ID, KEY, FakeProvider, Harness

from consentry.client import (
    APIError,
    Provider,
    RateLimited,
    ReauthorizationRequired,
    TokenSet,
)

MakeHarness = Callable[..., Harness]


def bearer(request: httpx.Request) -> str:
    return request.headers["Authorization"].removeprefix("Bearer ")


def test_api_call_sends_the_bearer_token_and_returns_json_and_headers(
    harness: MakeHarness, getresponse_fake: FakeProvider
) -> None:
    h = harness(getresponse_fake)
    tokens = getresponse_fake.seed(h.store)
    page = h.get("/from-fields", key=KEY, params={"query[email]": "jo@example.com", "perPage": 10})
    (request,) = getresponse_fake.requests
    assert request.headers["Authorization"] == f"Bearer {tokens.access_token}"
    assert str(request.url).startswith("https://api.getresponse.com/v3/from-fields?")
    assert "access_token" not in str(request.url)  # RFC 6750 §2.3 not used
    assert page.status_code == 200
    assert page.data["query"] == {"query[email]": "jo@example.com", "perPage": "10"}
    assert page.headers["TotalPages"] == "1"
    assert page.headers["X-RateLimit-Reset"] == "432 seconds"


def test_post_and_delete_send_method_and_json_body(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    consentry_fake.seed(h.store)
    created = h.post("from-fields", key=KEY, json={"email": "a@b.test", "name": "A"})
    assert created.data["method"] == "POST"
    assert json.loads(created.data["body"]) == {"email": "a@b.test", "name": "A"}
    gone = h.delete("/from-fields/abc", key=KEY)
    assert (gone.data["method"], gone.data["path"]) == ("DELETE", "/v3/from-fields/abc")


def test_caller_headers_cannot_replace_the_bearer(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    tokens = consentry_fake.seed(h.store)
    h.get("/accounts", key=KEY, headers={"authorization": "Bearer other", "X-Trace": "1"})
    (request,) = consentry_fake.requests
    assert bearer(request) == tokens.access_token
    assert request.headers["X-Trace"] == "1"


def test_bearer_is_never_sent_to_another_origin(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    consentry_fake.seed(h.store)
    with pytest.raises(ValueError):
        h.get("https://evil.example.test/v3/accounts", key=KEY)
    assert consentry_fake.requests == []
    assert h.get("https://api.example.test/v3/accounts", key=KEY).data["accountId"] == "VfEy1"


def test_unknown_key_requires_authorization(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    with pytest.raises(ReauthorizationRequired) as caught:
        h.get("/accounts", key="nobody")
    assert caught.value.url.startswith("https://auth.example.test/oauth2_authorize.html?")
    assert f"state={caught.value.authorization.state}" in caught.value.url
    assert consentry_fake.requests == []


def test_token_expiring_within_the_skew_is_refreshed_before_the_call(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    old = consentry_fake.seed(h.store, expires_at=time.time() + 10)
    h.get("/accounts", key=KEY)
    refresh, api = consentry_fake.requests
    assert consentry_fake.token_forms("refresh_token") == [
        {"grant_type": "refresh_token", "refresh_token": old.refresh_token}
    ]
    new = h.store.load(KEY)
    assert new is not None and new.access_token != old.access_token
    assert bearer(api) == new.access_token


def test_token_far_from_expiry_is_not_refreshed(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    consentry_fake.seed(h.store, expires_at=time.time() + 120)
    h.get("/accounts", key=KEY)
    assert consentry_fake.token_forms() == []


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_token_with_code_1014_is_refreshed_and_the_call_retried_once(
    harness: MakeHarness, status: int
) -> None:
    fake = FakeProvider(Provider.getresponse(), style="getresponse", auth_status=status)
    h = harness(fake)
    old = fake.seed(h.store)
    fake.expire_access_tokens()  # the server says expired although our clock does not
    assert h.get("/accounts", key=KEY).data["accountId"] == "VfEy1"
    first, refresh, retry = fake.requests
    assert bearer(first) == old.access_token
    assert bearer(retry) != old.access_token
    assert len(fake.token_forms("refresh_token")) == 1


def test_403_without_code_1014_is_not_an_expired_token(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    consentry_fake.seed(h.store)
    consentry_fake.api_queue.append(consentry_fake.error(403, 1000, "Forbidden"))
    with pytest.raises(APIError) as caught:
        h.get("/accounts", key=KEY)
    assert caught.value.http_status == 403
    assert consentry_fake.token_forms() == []


def test_a_second_401_after_refresh_is_raised_not_looped(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    tokens = consentry_fake.seed(h.store)
    for _ in range(2):
        consentry_fake.api_queue.append(
            consentry_fake.error(401, 1014, "X-Domain mismatch", context={"sentToken": "x"})
        )
    with pytest.raises(APIError) as caught:
        h.get("/accounts", key=KEY)
    assert (caught.value.http_status, caught.value.code) == (401, 1014)
    assert len(consentry_fake.token_forms("refresh_token")) == 1
    assert len(consentry_fake.api_requests()) == 2
    assert tokens.access_token not in str(caught.value)


def test_same_refresh_token_returned_by_getresponse_is_stored_and_reused(
    harness: MakeHarness, getresponse_fake: FakeProvider
) -> None:
    h = harness(getresponse_fake)
    first = getresponse_fake.seed(h.store, expires_at=0.0)
    h.get("/accounts", key=KEY)
    second = h.store.load(KEY)
    assert second is not None and second.refresh_token == first.refresh_token
    assert second.access_token != first.access_token
    h.refresh(key=KEY)
    third = h.store.load(KEY)
    assert third is not None and third.refresh_token == first.refresh_token
    assert third.access_token not in (first.access_token, second.access_token)


def test_refresh_response_without_refresh_token_keeps_the_old_one(harness: MakeHarness) -> None:
    fake = FakeProvider(Provider.getresponse(), style="getresponse", omit_refresh_token=True)
    h = harness(fake)
    old = fake.seed(h.store, expires_at=0.0)
    h.get("/accounts", key=KEY)
    new = h.store.load(KEY)
    assert new is not None and new.refresh_token == old.refresh_token


def test_rejected_refresh_token_asks_for_reauthorization(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    consentry_fake.seed(h.store, expires_at=0.0)
    consentry_fake.refresh.clear()  # expired or revoked at the server
    with pytest.raises(ReauthorizationRequired) as caught:
        h.get("/accounts", key=KEY)
    cause = caught.value.__cause__
    assert isinstance(cause, APIError) and cause.error == "invalid_grant"
    assert f"client_id={CLIENT_ID.replace(' ', '+').replace(':', '%3A')}" in caught.value.url
    assert caught.value.authorization.code_verifier is not None  # a usable new start
    assert consentry_fake.api_requests() == []


@pytest.mark.parametrize("status", [400, 401])
def test_getresponse_format_refresh_failure_asks_for_reauthorization(
    harness: MakeHarness, status: int
) -> None:
    fake = FakeProvider(Provider.getresponse(), style="getresponse", bad_refresh_status=status)
    h = harness(fake)
    fake.seed(h.store, expires_at=0.0)
    fake.refresh.clear()
    with pytest.raises(ReauthorizationRequired) as caught:
        h.get("/accounts", key=KEY)
    assert caught.value.url.startswith("https://app.getresponse.com/oauth2_authorize.html?")
    cause = caught.value.__cause__
    assert isinstance(cause, APIError) and cause.context == {}


def test_invalid_client_on_refresh_is_not_blamed_on_the_user(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    consentry_fake.seed(h.store, expires_at=0.0)
    consentry_fake.token_queue.append(
        consentry_fake.error(401, 1014, "Client authentication failed", "invalid_client")
    )
    with pytest.raises(APIError) as caught:
        h.get("/accounts", key=KEY)
    assert not isinstance(caught.value, ReauthorizationRequired)
    assert caught.value.error == "invalid_client"


def test_grant_without_refresh_token_asks_for_reauthorization(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    h.store.save(KEY, TokenSet(access_token="a" * 40, expires_in=60, expires_at=0.0))
    with pytest.raises(ReauthorizationRequired):
        h.get("/accounts", key=KEY)


def test_api_error_body_is_parsed_and_tokens_redacted(
    harness: MakeHarness, getresponse_fake: FakeProvider
) -> None:
    h = harness(getresponse_fake)
    getresponse_fake.seed(h.store)
    with pytest.raises(APIError) as caught:
        h.get("/missing", key=KEY)
    assert (caught.value.http_status, caught.value.code) == (404, 1013)
    assert caught.value.context == {}
    getresponse_fake.api_queue += [
        getresponse_fake.error(401, 1014, "expired", context={"sentToken": "leak" * 10})
    ] * 2
    with pytest.raises(APIError) as caught:
        h.get("/accounts", key=KEY)
    assert caught.value.context == {"sentToken": "<redacted>"}
    assert "leak" not in str(caught.value) and "leak" not in repr(caught.value.context)


# --- rate limits (GetResponse code 1015) -------------------------------------------------------


def too_many(fake: FakeProvider, headers: dict[str, str]) -> httpx.Response:
    return fake.error(
        429,
        1015,
        "Quota reached",
        context={"currentLimit": 80, "timeToReset": "1 second"},
        headers=headers,
    )


def test_429_with_retry_after_is_waited_out_then_retried(
    harness: MakeHarness, getresponse_fake: FakeProvider
) -> None:
    h = harness(getresponse_fake)
    getresponse_fake.seed(h.store)
    getresponse_fake.api_queue.append(too_many(getresponse_fake, {"Retry-After": "2"}))
    assert h.get("/accounts", key=KEY).data["accountId"] == "VfEy1"
    assert h.sleeps == [2.0]


def test_429_reset_given_as_n_seconds_is_parsed(
    harness: MakeHarness, getresponse_fake: FakeProvider
) -> None:
    h = harness(getresponse_fake)
    getresponse_fake.seed(h.store)
    getresponse_fake.api_queue.append(
        too_many(getresponse_fake, {"X-RateLimit-Reset": "3 seconds"})
    )
    h.get("/accounts", key=KEY)
    assert h.sleeps == [3.0]


def test_429_longer_than_the_bound_raises_rate_limited_without_waiting(
    harness: MakeHarness, getresponse_fake: FakeProvider
) -> None:
    h = harness(getresponse_fake, max_rate_limit_wait=60)
    getresponse_fake.seed(h.store)
    getresponse_fake.api_queue.append(
        too_many(getresponse_fake, {"X-RateLimit-Reset": "432 seconds"})
    )
    with pytest.raises(RateLimited) as caught:
        h.get("/accounts", key=KEY)
    assert caught.value.retry_after == 432.0
    assert (caught.value.http_status, caught.value.code) == (429, 1015)
    assert h.sleeps == []


def test_429_retries_are_bounded(harness: MakeHarness, getresponse_fake: FakeProvider) -> None:
    h = harness(getresponse_fake, max_rate_limit_retries=2)
    getresponse_fake.seed(h.store)
    getresponse_fake.api_queue += [too_many(getresponse_fake, {"Retry-After": "1"})] * 3
    with pytest.raises(RateLimited):
        h.get("/accounts", key=KEY)
    assert h.sleeps == [1.0, 1.0]
    assert len(getresponse_fake.api_requests()) == 3


# --- GetResponse MAX ---------------------------------------------------------------------------


@pytest.mark.parametrize("tld", ["com", "pl"])
def test_max_sends_x_domain_on_token_and_api_requests(harness: MakeHarness, tld: str) -> None:
    fake = FakeProvider(
        Provider.getresponse_max("news.example.com", tld=tld), style="getresponse", rotate=False
    )
    h = harness(fake)
    auth = h.start()
    assert auth.url.startswith("https://news.example.com/oauth2_authorize.html?")
    code = fake.issue_code(auth.redirect_uri)
    h.handle_callback({"code": code, "state": auth.state}, auth, key=KEY)
    fake.expire_access_tokens()
    h.get("/accounts", key=KEY)
    hosts = {r.url.host for r in fake.requests}
    assert hosts == {f"api3.getresponse360.{tld}"}
    assert [r.headers.get("X-Domain") for r in fake.requests] == ["news.example.com"] * 4
    assert [r.url.path for r in fake.requests] == [
        "/v3/token",
        "/v3/accounts",
        "/v3/token",
        "/v3/accounts",
    ]
