"""Helpers of the toolkit tests: ``consentry.client`` against a real ``consentry serve``.

No fakes: the toolkit's authorize URL is opened on the live server by the root conftest's
browser helper (log in, Allow), and the redirect it answers is handed to
``handle_callback`` exactly as a web application would.
"""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from consentry.client import AsyncClient, Client

CALLBACK = "http://127.0.0.1:9/gr_callback"  # loopback; the "browser" never follows it
TOKEN_LOG_LINE = '"path": "/v3/token"'
PASSWORD = "correct horse battery"  # the root conftest's password for every account
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_APPS: dict[str, Any] = {}


def signup(server: Any, name: str = "Test User") -> str:
    """A new account through the signup page (a CLI process costs seconds on a busy host)."""
    email = f"u{secrets.token_hex(6)}@example.com"
    with server.browser() as b:
        page = b.get("/signup")
        csrf = CSRF.search(page.text)
        assert csrf, page.text
        r = b.post(
            "/signup",
            data={"email": email, "password": PASSWORD, "name": name, "csrf_token": csrf.group(1)},
        )
        assert r.status_code == 303, r.text
    return email


def shared_app(server: Any) -> Any:
    """One MyTemplateMaker registration per server, with a loopback redirect URI."""
    if server.url not in _APPS:
        if server._dev is None:
            server._dev = signup(server, "Dev Eloper")
        _APPS[server.url] = server.new_client((CALLBACK,))
    return _APPS[server.url]


def open_authorize_url(
    server: Any,
    app: Any,
    url: str,
    email: str,
    *,
    decision: str = "allow",
    host: str | None = None,
) -> str:
    """Open the toolkit's authorize URL on the live server as a browser; return the callback URL.

    ``url`` may name another host (a MAX custom domain): its path and query are sent to
    the server on loopback, with ``Host: <host>`` when given.
    """
    params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    headers = {"Host": host} if host else None
    with httpx.Client(
        base_url=server.url, follow_redirects=False, timeout=30, headers=headers
    ) as browser:
        r = server.authorize(app, email, decision=decision, browser=browser, **params)
    assert r.status_code in (302, 303), r.text
    location = str(r.headers["location"])
    assert location.startswith(app.redirect_uri), location
    return location


def token_log_lines(server: Any) -> int:
    """How many requests to /v3/token the server has logged (CONSENTRY_LOG_LEVEL=info)."""
    return sum(TOKEN_LOG_LINE in line for line in Path(server.log_path).read_text().splitlines())


@dataclass
class TokenRequests:
    """Counts the requests the toolkit sends to the token endpoint (httpx event hook)."""

    token_url: str
    seen: list[httpx.Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, request: httpx.Request) -> None:
        if str(request.url) == self.token_url and request.method == "POST":
            with self._lock:
                self.seen.append(request)

    async def arecord(self, request: httpx.Request) -> None:
        self.record(request)

    @property
    def count(self) -> int:
        return len(self.seen)

    def grant_types(self) -> list[str]:
        return [dict(parse_qsl(r.content.decode())).get("grant_type", "") for r in self.seen]


@dataclass
class Toolkit:
    """A toolkit client bound to one live server and one registered application."""

    server: Any
    app: Any
    client: Client | AsyncClient
    requests: TokenRequests
    http: httpx.Client | httpx.AsyncClient

    @property
    def sync(self) -> Client:
        assert isinstance(self.client, Client)
        return self.client

    @property
    def aio(self) -> AsyncClient:
        assert isinstance(self.client, AsyncClient)
        return self.client

    async def aclose(self) -> None:
        if isinstance(self.http, httpx.AsyncClient):
            await self.http.aclose()

    def connect_sync(self, key: str, email: str | None = None) -> str:
        assert isinstance(self.client, Client)
        email = email or signup(self.server)
        auth = self.client.start()
        callback = open_authorize_url(self.server, self.app, auth.url, email)
        self.client.handle_callback(callback, auth.to_dict(), key=key)
        return email

    async def connect_async(self, key: str, email: str | None = None) -> str:
        assert isinstance(self.client, AsyncClient)
        email = email or signup(self.server)
        auth = self.client.start()
        callback = open_authorize_url(self.server, self.app, auth.url, email)
        await self.client.handle_callback(callback, auth.to_dict(), key=key)
        return email
