"""Helpers for the provider tests: fast accounts, PKCE pairs, error-body checks.

Kept apart from the root ``conftest`` so test modules can import them by a unique name.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

# Must equal the password the root conftest's browser helpers log in with.
PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
REQUEST_ID = re.compile(r'name="request_id" value="([^"]+)"')
HEX40 = re.compile(r"[0-9a-f]{40}")
CALLBACK = "https://mytemplatemaker.example.com/gr_callback"
DOCS = "https://apidocs.getresponse.com/en/v3"
# SPEC §1.4: every API error carries these members.
GR_MEMBERS = {"httpStatus", "code", "codeDescription", "message", "moreInfo", "context", "uuid"}


def signup(server: Any, name: str = "Test User") -> str:
    """A new account through the signup page (much faster than a CLI process)."""
    email, browser = signup_session(server, name)
    browser.close()
    return email


def signup_session(server: Any, name: str = "Test User") -> tuple[str, httpx.Client]:
    """A new account and the browser that signed it up, which is now logged in."""
    email = f"u{secrets.token_hex(6)}@example.com"
    b = server.browser()
    page = b.get("/signup")
    csrf = CSRF.search(page.text)
    assert csrf, page.text
    r = b.post(
        "/signup",
        data={"email": email, "password": PASSWORD, "name": name, "csrf_token": csrf.group(1)},
    )
    assert r.status_code == 303, r.text
    return email, b


def prepare(server: Any) -> Any:
    """Give a freshly started server its developer account without a CLI round trip."""
    server._dev = signup(server, "Dev Eloper")
    return server


def redirect_params(r: httpx.Response) -> dict[str, str]:
    parts = urlsplit(r.headers["location"])
    q = parse_qs(parts.query or parts.fragment, keep_blank_values=True)
    return {k: v[0] for k, v in q.items()}


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)  # 64 unreserved characters
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@contextmanager
def logged_in_browser(server: Any, email: str) -> Iterator[httpx.Client]:
    with server.browser() as b:
        server.login(b, email)
        yield b


def consent_form(page: httpx.Response) -> dict[str, str]:
    csrf, rid = CSRF.search(page.text), REQUEST_ID.search(page.text)
    assert page.status_code == 200 and csrf and rid, page.text
    return {"csrf_token": csrf.group(1), "request_id": rid.group(1)}


def assert_oauth_error(r: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """RFC 6749 §5.2 members beside GetResponse's (SPEC §1.2), never cacheable."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error, body
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert_gr_error(r, status)
    assert r.headers["cache-control"] == "no-store"
    if error == "invalid_client":
        assert r.headers["www-authenticate"].startswith("Basic"), r.headers
    return dict(body)


def assert_gr_error(r: httpx.Response, status: int, code: int | None = None) -> dict[str, Any]:
    """GetResponse's error body (SPEC §1.4); ``uuid`` is the request id of the response."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert GR_MEMBERS <= set(body), body
    assert body["httpStatus"] == status
    if code is not None:
        assert body["code"] == code, body
    assert isinstance(body["codeDescription"], str) and body["codeDescription"]
    assert isinstance(body["message"], str) and body["message"]
    assert body["moreInfo"] == f"{DOCS}/errors/{body['code']}"
    assert isinstance(body["context"], dict)
    assert body["uuid"] and body["uuid"] == r.headers["x-request-id"]
    return dict(body)


class Codes:
    """Codes in one request each: one account, logged in once, that consents on first use.

    Later authorizations skip the consent page (remembered consent), so a code costs a
    single GET. Every code still starts its own grant."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.email, self.browser = signup_session(server)

    def __call__(self, client: Any = None, **params: str) -> str:
        client = client or self.server.client
        query = {"response_type": "code", "client_id": client.client_id, "state": "xyz"}
        r = self.browser.get("/oauth2_authorize.html", params=query | params)
        if r.status_code == 200:
            r = self.browser.post(
                "/oauth2_authorize.html", data=consent_form(r) | {"decision": "allow"}
            )
        assert r.status_code in (302, 303), r.text
        return redirect_params(r)["code"]

    def tokens(self, client: Any = None, **params: str) -> dict[str, Any]:
        client = client or self.server.client
        r = self.server.token(client, grant_type="authorization_code", code=self(client, **params))
        assert r.status_code == 200, r.text
        return dict(r.json())

    def close(self) -> None:
        self.browser.close()
