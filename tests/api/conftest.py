"""Fixtures of the /v3 API tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from api_support import Account, signup


@pytest.fixture
def account(server: Any) -> Account:
    """A fresh account with a full-access token of the shared application."""
    return Account(server)


@pytest.fixture
def make_account(server: Any) -> Callable[..., Account]:
    return lambda name="Ann Example", **kw: Account(server, name, **kw)


@pytest.fixture(scope="session")
def limited_server(make_server: Callable[..., Any]) -> Any:
    """A server that allows 3 API calls per account per second."""
    s = make_server(rate_limit_per_second="3")
    s._dev = signup(s, "Dev Eloper")
    return s
