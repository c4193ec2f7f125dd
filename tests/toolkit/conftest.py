"""Fixtures of the toolkit tests (helpers in ``toolkit_support``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from toolkit_support import CALLBACK, TokenRequests, Toolkit, shared_app

from consentry.client import AsyncClient, Client, Provider, TokenStore


@pytest.fixture
def toolkit() -> Iterator[Callable[..., Toolkit]]:
    """Build sync or async toolkit clients for a server; closed after the test."""
    made: list[Toolkit] = []

    def make(
        server: Any,
        *,
        kind: str = "sync",
        app: Any = None,
        provider: Provider | None = None,
        store: TokenStore | None = None,
    ) -> Toolkit:
        app = app or shared_app(server)
        provider = provider or Provider.consentry(server.url)
        counter = TokenRequests(provider.token_url)
        client: Client | AsyncClient
        http: httpx.Client | httpx.AsyncClient
        if kind == "sync":
            http = httpx.Client(timeout=30, event_hooks={"request": [counter.record]})
            client = Client(
                provider, app.client_id, app.client_secret, redirect_uri=CALLBACK,
                store=store, http_client=http,
            )  # fmt: skip
        else:
            http = httpx.AsyncClient(timeout=30, event_hooks={"request": [counter.arecord]})
            client = AsyncClient(
                provider, app.client_id, app.client_secret, redirect_uri=CALLBACK,
                store=store, http_client=http,
            )  # fmt: skip
        made.append(Toolkit(server, app, client, counter, http))
        return made[-1]

    yield make
    for tk in made:  # async tests close their own (they need the event loop)
        if isinstance(tk.http, httpx.Client):
            tk.http.close()


@pytest.fixture(scope="session")
def expiring_server(make_server: Callable[..., Any]) -> Any:
    """Access tokens live 3 s; every request is logged; no rate limit gets in the way."""
    return make_server(
        access_token_ttl="3",
        log_level="info",
        rate_limit_concurrent="200",
        rate_limit_per_second="2000",
    )


@pytest.fixture(scope="session")
def short_refresh_server(make_server: Callable[..., Any]) -> Any:
    """Refresh tokens live 2 s, access tokens 1 s."""
    return make_server(refresh_token_ttl="2", access_token_ttl="1")
