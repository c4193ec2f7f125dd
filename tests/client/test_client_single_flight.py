"""Concurrent callers on one expired token trigger exactly one refresh."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from client_fakes import CLIENT_ID, CLIENT_SECRET, KEY, FakeProvider

from consentry.client import AsyncClient, Client, FileTokenStore, MemoryTokenStore, Provider


def fake_provider() -> FakeProvider:
    # A slow refresh widens the window in which callers pile up behind the lock.
    return FakeProvider(Provider.consentry("https://auth.example.test"), refresh_delay=0.05)


def async_client(fake: FakeProvider, store: MemoryTokenStore | FileTokenStore) -> AsyncClient:
    transport = httpx.MockTransport(fake.ahandle)
    return AsyncClient(
        fake.provider,
        CLIENT_ID,
        CLIENT_SECRET,
        store=store,
        http_client=httpx.AsyncClient(transport=transport),
    )


async def test_50_tasks_on_an_expired_token_refresh_once() -> None:
    fake = fake_provider()
    store = MemoryTokenStore()
    old = fake.seed(store, expires_at=time.time() - 1)
    client = async_client(fake, store)

    results = await asyncio.gather(*(client.get("/accounts", key=KEY) for _ in range(50)))

    assert len(fake.token_forms("refresh_token")) == 1
    new = store.load(KEY)
    assert new is not None and new.access_token != old.access_token
    assert all(r.data["accountId"] == "VfEy1" for r in results)
    bearers = {r.headers["Authorization"] for r in fake.api_requests()}
    assert bearers == {f"Bearer {new.access_token}"}
    assert len(fake.api_requests()) == 50


async def test_50_tasks_rejected_with_401_refresh_once(tmp_path: object) -> None:
    fake = fake_provider()
    store = FileTokenStore(f"{tmp_path}/tokens.json")
    fake.seed(store)
    fake.expire_access_tokens()  # every task's first call gets 401 code 1014
    client = async_client(fake, store)

    await asyncio.gather(*(client.get("/accounts", key=KEY) for _ in range(50)))

    assert len(fake.token_forms("refresh_token")) == 1


async def test_different_keys_refresh_independently() -> None:
    fake = fake_provider()
    store = MemoryTokenStore()
    for key in ("a", "b", "c"):
        fake.seed(store, key, expires_at=0.0)
    client = async_client(fake, store)
    await asyncio.gather(*(client.get("/accounts", key=k) for k in "abc" for _ in range(10)))
    assert len(fake.token_forms("refresh_token")) == 3
    assert client._locks._locks == {}  # locks are dropped once nobody holds them


def test_20_threads_on_an_expired_token_refresh_once() -> None:
    fake = fake_provider()
    store = MemoryTokenStore()
    old = fake.seed(store, expires_at=time.time() - 1)
    client = Client(
        fake.provider,
        CLIENT_ID,
        CLIENT_SECRET,
        store=store,
        http_client=httpx.Client(transport=httpx.MockTransport(fake.handle)),
    )
    start = threading.Barrier(20)

    def call() -> object:
        start.wait()
        return client.get("/accounts", key=KEY).data

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: call(), range(20)))

    assert len(fake.token_forms("refresh_token")) == 1
    new = store.load(KEY)
    assert new is not None and new.access_token != old.access_token
    assert len(results) == 20
    assert {r.headers["Authorization"] for r in fake.api_requests()} == {
        f"Bearer {new.access_token}"
    }
