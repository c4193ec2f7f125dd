"""The asynchronous driver: performs the core's effects with ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar, assert_never, cast

import httpx

from ._core import (
    BaseClient,
    CallbackParams,
    Delete,
    Effect,
    Exclusive,
    Flow,
    KeptRequest,
    KeyLocks,
    Load,
    QueryParams,
    Save,
    Send,
    Sleep,
)
from ._models import APIResponse, TokenSet
from ._provider import Provider
from ._stores import MemoryTokenStore, TokenStore

T = TypeVar("T")


class AsyncClient(BaseClient):
    """The asynchronous twin of :class:`Client`: same arguments, same behaviour, ``await``.

    Tasks sharing a key refresh once between them (an ``asyncio.Lock`` per key).
    Store calls run in a worker thread (``asyncio.to_thread``), so the file and
    SQL stores never block the event loop. ``sleep`` defaults to ``asyncio.sleep``.

    Example::

        async with AsyncClient(Provider.consentry("http://localhost:8000"), cid, secret,
                               redirect_uri="http://localhost:8001/callback") as client:
            auth = client.start()
            await client.handle_callback(query, auth, key="user-42")
            accounts = (await client.get("/accounts", key="user-42")).data
    """

    def __init__(
        self,
        provider: Provider,
        client_id: str,
        client_secret: str,
        *,
        redirect_uri: str | None = None,
        scope: str | None = None,
        store: TokenStore | None = None,
        http_client: httpx.AsyncClient | None = None,
        refresh_skew: float = 30.0,
        max_rate_limit_wait: float = 30.0,
        max_rate_limit_retries: int = 3,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            provider,
            client_id,
            client_secret,
            redirect_uri=redirect_uri,
            scope=scope,
            store=store if store is not None else MemoryTokenStore(),
            refresh_skew=refresh_skew,
            max_rate_limit_wait=max_rate_limit_wait,
            max_rate_limit_retries=max_rate_limit_retries,
            clock=clock,
        )
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient(timeout=10.0)
        self._sleep = sleep
        self._locks: KeyLocks[asyncio.Lock] = KeyLocks(asyncio.Lock)

    # effects ------------------------------------------------------------------------------

    async def _drive(self, flow: Flow[T]) -> T:
        result: Any = None
        error: Exception | None = None
        while True:
            try:
                effect = flow.throw(error) if error is not None else flow.send(result)
            except StopIteration as stop:
                return cast(T, stop.value)
            result, error = None, None
            try:
                result = await self._perform(effect)
            except Exception as exc:  # handed back to the flow, which decides
                error = exc

    async def _perform(self, effect: Effect) -> Any:
        match effect:
            case Send(request):
                return await self._http.send(request)
            case Sleep(seconds):
                await self._sleep(seconds)
                return None
            case Load(key):
                return await asyncio.to_thread(self._store.load, key)
            case Save(key, tokens):
                await asyncio.to_thread(self._store.save, key, tokens)
                return None
            case Delete(key):
                await asyncio.to_thread(self._store.delete, key)
                return None
            case Exclusive(key, flow):
                lock = self._locks.checkout(key)
                try:
                    async with lock:
                        return await self._drive(flow)
                finally:
                    self._locks.checkin(key)
            case _:
                assert_never(effect)

    # public API ---------------------------------------------------------------------------

    async def handle_callback(
        self, params: CallbackParams, kept: KeptRequest, *, key: str
    ) -> TokenSet:
        """Finish authorization: verify the callback, exchange the code, store the tokens.

        See :meth:`Client.handle_callback`.
        """
        return await self._drive(self._core.callback_flow(key, params, kept))

    async def request(
        self,
        method: str,
        path: str,
        *,
        key: str,
        params: QueryParams | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> APIResponse:
        """Call the API as the user of ``key``. See :meth:`Client.request`."""
        flow = self._core.api_flow(key, method, path, params=params, json=json, headers=headers)
        return await self._drive(flow)

    async def get(
        self,
        path: str,
        *,
        key: str,
        params: QueryParams | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> APIResponse:
        """``GET`` an API path, e.g. ``await client.get("/accounts", key=user_id)``."""
        return await self.request("GET", path, key=key, params=params, headers=headers)

    async def post(
        self,
        path: str,
        *,
        key: str,
        json: Any = None,
        params: QueryParams | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> APIResponse:
        """``POST`` a JSON body to an API path."""
        return await self.request("POST", path, key=key, params=params, json=json, headers=headers)

    async def delete(
        self,
        path: str,
        *,
        key: str,
        params: QueryParams | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> APIResponse:
        """``DELETE`` an API path."""
        return await self.request("DELETE", path, key=key, params=params, headers=headers)

    async def refresh(self, *, key: str) -> TokenSet:
        """Refresh the key's tokens now (normally automatic); returns the stored new set."""
        return await self._drive(self._core.force_refresh_flow(key))

    async def disconnect(self, *, key: str) -> None:
        """Revoke the grant at the provider (RFC 7009) if it can, then forget the tokens."""
        await self._drive(self._core.disconnect_flow(key))

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
