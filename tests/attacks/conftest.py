"""Servers and applications the attacks run against.

``server`` (the session's default server) hosts most attacks. A few need settings of their
own: ``strict`` (grace window of 1 s, 3 failed logins per account, 5 API calls per second,
debug logging so that everything that could leak is logged), ``lab`` (lifetimes of 1-3 s,
no login or client-authentication throttling, for expiry and timing) and ``https_server``
(pages served as https).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.attacks.support import Client, Server, signup


def _prepare(server: Server) -> Server:
    server._dev = signup(server, "Dev Eloper")[0]  # faster than a CLI process
    return server


@pytest.fixture(scope="session")
def victim_app(server: Server) -> Client:
    """The honest application a user connects."""
    if server._dev is None:
        _prepare(server)
    return server.new_client(name="Victim App")


@pytest.fixture(scope="session")
def attacker_app(server: Server) -> Client:
    """An application the attacker registered legitimately, with the same redirect URI."""
    owner = signup(server, "Mallory")[0]
    return server.new_client(owner=owner, name="Attacker App")


@pytest.fixture(scope="session")
def strict(make_server: Callable[..., Server]) -> Server:
    return _prepare(
        make_server(
            refresh_grace="1",
            login_limit_per_account="3",
            rate_limit_per_second="5",
            log_level="debug",
        )
    )


@pytest.fixture(scope="session")
def strict_app(strict: Server) -> Client:
    return strict.new_client(name="Strict App")


@pytest.fixture(scope="session")
def lab(make_server: Callable[..., Server]) -> Server:
    return _prepare(
        make_server(
            code_ttl="2",
            access_token_ttl="1",
            refresh_token_ttl="3",
            login_limit_per_account="0",
            login_limit_per_address="0",
            client_auth_failures="0",
        )
    )


@pytest.fixture(scope="session")
def lab_app(lab: Server) -> Client:
    return lab.new_client(name="Lab App")


@pytest.fixture(scope="session")
def https_server(make_server: Callable[..., Server]) -> Server:
    return make_server(app_url="https://127.0.0.1:8443")


@pytest.fixture
def victim(server: Server) -> Any:
    """A fresh user, logged in: (email, browser)."""
    email, browser = signup(server)
    yield email, browser
    browser.close()


@pytest.fixture(scope="session")
def shared_victim(server: Server) -> Any:
    """One logged-in user for attacks that change nothing about the account."""
    email, browser = signup(server)
    yield email, browser
    browser.close()
