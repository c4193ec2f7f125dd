"""Fixtures of the provider tests: extra servers with short lifetimes, more applications."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from oauth_support import Codes, prepare, signup


@pytest.fixture
def user(server: Any) -> str:
    """A fresh account on the shared server."""
    return signup(server)


@pytest.fixture(scope="session")
def codes(server: Any) -> Iterator[Codes]:
    """Fast codes (and token pairs) of one consenting account on the shared server."""
    c = Codes(server)
    yield c
    c.close()


@pytest.fixture(scope="session")
def other_client(server: Any) -> Any:
    """A second application of another developer, registered with the same redirect URI."""
    return server.new_client(owner=signup(server, "Other Dev"), name="Other App")


@pytest.fixture(scope="session")
def loopback_client(server: Any) -> Any:
    """A native app: its registered redirect URI is on 127.0.0.1 (RFC 8252 §7.3)."""
    return server.new_client(("http://127.0.0.1/cb",), name="Desktop App")


@pytest.fixture(scope="session")
def resource_server_client(server: Any) -> Any:
    return server.new_client(("https://rs.example.com/cb",), resource_server=True, name="RS")


@pytest.fixture(scope="session")
def short_server(make_server: Callable[..., Any]) -> Any:
    """Access and refresh tokens that live one second."""
    return prepare(make_server(access_token_ttl="1", refresh_token_ttl="1"))


@pytest.fixture(scope="session")
def code_ttl_server(make_server: Callable[..., Any]) -> Any:
    return prepare(make_server(code_ttl="1"))


@pytest.fixture(scope="session")
def grace0_server(make_server: Callable[..., Any]) -> Any:
    return prepare(make_server(refresh_grace="0"))


@pytest.fixture(scope="session")
def grace1_server(make_server: Callable[..., Any]) -> Any:
    return prepare(make_server(refresh_grace="1"))
