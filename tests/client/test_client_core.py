"""The sans-IO core's pure pieces: wait times, error bodies, token responses."""

from __future__ import annotations

from collections.abc import Callable
from email.utils import formatdate

import httpx
import pytest
from client_fakes import KEY, FakeProvider, Harness
from hypothesis import given
from hypothesis import strategies as st

from consentry.client import APIError, SQLTokenStore
from consentry.client._core import parse_error, parse_token_response, rate_limit_wait

MakeHarness = Callable[..., Harness]


def response(status: int, headers: dict[str, str] | None = None, **body: object) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@given(st.integers(0, 10**6))
def test_reset_given_as_n_seconds_is_read_as_n(n: int) -> None:
    assert rate_limit_wait(response(429, {"X-RateLimit-Reset": f"{n} seconds"}), 0.0) == n


def test_retry_after_wins_over_the_frame_reset() -> None:
    r = response(429, {"Retry-After": "1", "X-RateLimit-Reset": "432 seconds"})
    assert rate_limit_wait(r, 0.0) == 1.0


def test_retry_after_may_be_an_http_date() -> None:
    r = response(429, {"Retry-After": formatdate(1_000_030.0, usegmt=True)})
    assert rate_limit_wait(r, 1_000_000.0) == 30.0


@pytest.mark.parametrize("value", ["soon", "nan", "inf"])
def test_unreadable_retry_after_falls_back_to_the_body(value: str) -> None:
    r = response(429, {"Retry-After": value}, context={"timeToReset": "7 seconds"})
    assert rate_limit_wait(r, 0.0) == 7.0


def test_wait_defaults_to_one_second_when_nothing_says() -> None:
    assert rate_limit_wait(httpx.Response(429, text="slow down"), 0.0) == 1.0


def test_non_json_error_still_gives_an_api_error() -> None:
    error = parse_error(httpx.Response(502, text="<html>Bad gateway</html>"))
    assert (error.http_status, error.code, error.context) == (502, None, {})


def test_non_empty_list_context_is_kept_under_items() -> None:
    error = parse_error(response(400, httpStatus=400, code=1000, context=["name is required"]))
    assert error.context == {"items": ["name is required"]}


def test_secret_echoed_in_an_error_message_is_scrubbed() -> None:
    error = parse_error(response(400, message="bad token abc123"), ("abc123",))
    assert "abc123" not in str(error) and error.message == "bad token <redacted>"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"access_token": ""},
        {"access_token": "a", "token_type": "mac"},
    ],
)
def test_unusable_token_response_is_an_error(body: dict[str, object]) -> None:
    with pytest.raises(APIError):
        parse_token_response(httpx.Response(200, json=body), 0.0)


def test_expires_at_uses_the_local_clock() -> None:
    tokens = parse_token_response(
        response(200, access_token="a", expires_in="3600", token_type="bearer"), 50.0
    )
    assert (tokens.expires_in, tokens.expires_at) == (3600, 3650.0)
    assert parse_token_response(response(200, access_token="a"), 50.0).expires_at is None


def test_short_lived_tokens_are_not_refreshed_on_every_call() -> None:
    tokens = parse_token_response(response(200, access_token="a", expires_in=10), 0.0)
    assert not tokens.expires_within(30.0, now=1.0)  # skew capped at half the lifetime
    assert tokens.expires_within(30.0, now=6.0)


def test_async_client_works_with_the_sql_store(
    harness: MakeHarness, consentry_fake: FakeProvider, tmp_path: object
) -> None:
    store = SQLTokenStore(f"sqlite:///{tmp_path}/app.db")
    h = harness(consentry_fake, store=store)
    old = consentry_fake.seed(store, expires_at=0.0)
    h.get("/accounts", key=KEY)
    new = store.load(KEY)
    assert new is not None and new.refresh_token != old.refresh_token
