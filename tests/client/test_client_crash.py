"""A rotation is stored before the new access token is used, so no crash loses the grant."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlencode

import httpx
import pytest
from client_fakes import KEY, REDIRECT_URI, FakeProvider, Harness, s256

from consentry.client import MemoryTokenStore, TokenSet

MakeHarness = Callable[..., Harness]


class RecordingStore(MemoryTokenStore):
    """A memory store that logs saves into a shared event list, and can be made to fail."""

    def __init__(self, events: list[str], fail: bool = False) -> None:
        super().__init__()
        self.events = events
        self.fail = False
        self._fail_later = fail

    def save(self, key: str, tokens: TokenSet) -> None:
        if self.fail:
            raise OSError("disk full")
        self.events.append(f"save {tokens.access_token}")
        super().save(key, tokens)
        self.fail = self._fail_later


def test_new_refresh_token_is_stored_even_if_the_call_after_refresh_dies(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    h = harness(consentry_fake)
    old = consentry_fake.seed(h.store, expires_at=0.0)
    consentry_fake.api_queue.append(httpx.ConnectError("connection reset"))

    with pytest.raises(httpx.ConnectError):
        h.get("/accounts", key=KEY)

    saved = h.store.load(KEY)
    assert saved is not None and saved.refresh_token != old.refresh_token
    assert saved.refresh_token in consentry_fake.refresh  # the server's only live one
    assert old.refresh_token not in consentry_fake.refresh
    assert h.get("/accounts", key=KEY).data["accountId"] == "VfEy1"  # and it works


def test_store_is_written_before_the_new_access_token_is_sent(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    events: list[str] = []
    h = harness(consentry_fake, store=RecordingStore(events))
    consentry_fake.seed(h.store, expires_at=0.0)
    events.clear()
    real_respond = consentry_fake.respond

    def respond(request: httpx.Request) -> httpx.Response:
        if "Bearer" in request.headers.get("Authorization", ""):
            events.append("send " + request.headers["Authorization"].removeprefix("Bearer "))
        return real_respond(request)

    consentry_fake.respond = respond  # type: ignore[method-assign]
    h.get("/accounts", key=KEY)
    new = h.store.load(KEY)
    assert new is not None
    assert events == [f"save {new.access_token}", f"send {new.access_token}"]


def test_failing_store_stops_the_new_token_being_used(
    harness: MakeHarness, consentry_fake: FakeProvider
) -> None:
    store = RecordingStore([], fail=True)
    h = harness(consentry_fake, store=store)
    old = consentry_fake.seed(store, expires_at=0.0)  # this save works; the next one fails

    with pytest.raises(OSError, match="disk full"):
        h.get("/accounts", key=KEY)

    assert len(consentry_fake.token_forms("refresh_token")) == 1
    assert consentry_fake.api_requests() == []  # the new access token never left the client
    assert store.load(KEY) == old


def test_no_token_or_secret_is_logged(
    harness: MakeHarness, consentry_fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = harness(consentry_fake)
    auth = h.start()
    code = consentry_fake.issue_code(REDIRECT_URI, s256(auth.code_verifier))
    query = urlencode({"code": code, "state": auth.state, "iss": "https://auth.example.test"})
    tokens = h.handle_callback(query, auth, key=KEY)
    consentry_fake.expire_access_tokens()
    h.get("/accounts", key=KEY)
    refreshed = h.store.load(KEY)
    h.disconnect(key=KEY)
    assert refreshed is not None
    text = caplog.text
    assert any(r.name == "consentry.client" for r in caplog.records)
    for secret in (
        code,
        auth.state,
        auth.code_verifier,
        tokens.access_token,
        tokens.refresh_token,
        refreshed.access_token,
        refreshed.refresh_token,
        "s3cr+t",
    ):
        assert secret and secret not in text
