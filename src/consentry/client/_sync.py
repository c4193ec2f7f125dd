"""The synchronous driver: performs the core's effects with ``httpx.Client`` and threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
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


class Client(BaseClient):
    """OAuth 2.0 client and API caller, synchronous (thread-safe).

    Tokens are kept in ``store`` under a key the application chooses (e.g. its
    user id). Access tokens are refreshed ``refresh_skew`` seconds before they
    expire and once after a 401 (or GetResponse's 403 with code 1014); threads
    sharing a key refresh once between them. On HTTP 429 the client waits as the
    provider asks, at most ``max_rate_limit_retries`` times and never longer
    than ``max_rate_limit_wait`` seconds at once, else raises ``RateLimited``.

    Example::

        client = Client(Provider.getresponse(), CLIENT_ID, CLIENT_SECRET,
                        redirect_uri="https://mytemplatemaker.example.com/gr_callback",
                        store=FileTokenStore("tokens.json"))
        auth = client.start()                      # redirect the user to auth.url
        client.handle_callback(query, auth, key="user-42")
        client.get("/from-fields", key="user-42").data
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
        http_client: httpx.Client | None = None,
        refresh_skew: float = 30.0,
        max_rate_limit_wait: float = 30.0,
        max_rate_limit_retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
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
        self._http = http_client if http_client is not None else httpx.Client(timeout=10.0)
        self._sleep = sleep
        self._locks: KeyLocks[threading.Lock] = KeyLocks(threading.Lock)

    # effects ------------------------------------------------------------------------------

    def _drive(self, flow: Flow[T]) -> T:
        result: Any = None
        error: Exception | None = None
        while True:
            try:
                effect = flow.throw(error) if error is not None else flow.send(result)
            except StopIteration as stop:
                return cast(T, stop.value)
            result, error = None, None
            try:
                result = self._perform(effect)
            except Exception as exc:  # handed back to the flow, which decides
                error = exc

    def _perform(self, effect: Effect) -> Any:
        match effect:
            case Send(request):
                return self._http.send(request)
            case Sleep(seconds):
                self._sleep(seconds)
                return None
            case Load(key):
                return self._store.load(key)
            case Save(key, tokens):
                self._store.save(key, tokens)
                return None
            case Delete(key):
                self._store.delete(key)
                return None
            case Exclusive(key, flow):
                lock = self._locks.checkout(key)
                try:
                    with lock:
                        return self._drive(flow)
                finally:
                    self._locks.checkin(key)
            case _:
                assert_never(effect)

    # public API ---------------------------------------------------------------------------

    def handle_callback(self, params: CallbackParams, kept: KeptRequest, *, key: str) -> TokenSet:
        """Finish authorization: verify the callback, exchange the code, store the tokens.

        ``params`` is the callback's query (a mapping, a query string, or the full
        URL); ``kept`` is what ``start()`` returned, or its ``to_dict()`` (``None``
        when the session has none: a ``StateMismatch``). Pop it from the session
        first so it is used once. Raises ``StateMismatch``, ``AccessDenied``,
        ``AuthorizationError`` or ``APIError``.

        Example::

            kept = session.pop("oauth", None)
            client.handle_callback(request.query_params, kept, key=user_id)
        """
        return self._drive(self._core.callback_flow(key, params, kept))

    def request(
        self,
        method: str,
        path: str,
        *,
        key: str,
        params: QueryParams | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> APIResponse:
        """Call the API as the user of ``key``; ``path`` is relative to the API base (``/v3``).

        Raises ``APIError`` for an error answer, ``RateLimited`` when the rate
        limit lasts too long, ``ReauthorizationRequired`` when the grant is gone.
        """
        flow = self._core.api_flow(key, method, path, params=params, json=json, headers=headers)
        return self._drive(flow)

    def get(
        self,
        path: str,
        *,
        key: str,
        params: QueryParams | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> APIResponse:
        """``GET`` an API path, e.g. ``client.get("/accounts", key=user_id)``."""
        return self.request("GET", path, key=key, params=params, headers=headers)

    def post(
        self,
        path: str,
        *,
        key: str,
        json: Any = None,
        params: QueryParams | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> APIResponse:
        """``POST`` a JSON body, e.g. ``client.post("/from-fields", key=k, json={...})``."""
        return self.request("POST", path, key=key, params=params, json=json, headers=headers)

    def delete(
        self,
        path: str,
        *,
        key: str,
        params: QueryParams | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> APIResponse:
        """``DELETE`` an API path, e.g. ``client.delete(f"/from-fields/{fid}", key=k)``."""
        return self.request("DELETE", path, key=key, params=params, headers=headers)

    def refresh(self, *, key: str) -> TokenSet:
        """Refresh the key's tokens now (normally automatic); returns the stored new set."""
        return self._drive(self._core.force_refresh_flow(key))

    def disconnect(self, *, key: str) -> None:
        """Revoke the grant at the provider (RFC 7009) if it can, then forget the tokens."""
        self._drive(self._core.disconnect_flow(key))

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
