"""Fixtures of the page tests: servers with their own login-throttling numbers."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def throttled(make_server: Any) -> Any:
    """Small per-account limit, so that a test reaches it in a few (slow, argon2) attempts."""
    return make_server(login_limit_per_account="3", login_limit_per_address="1000")


@pytest.fixture(scope="module")
def address_throttled(make_server: Any) -> Any:
    """Small per-address limit with a large per-account one."""
    return make_server(login_limit_per_account="1000", login_limit_per_address="4")
