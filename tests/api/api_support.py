"""Helpers of the /v3 API tests."""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

PASSWORD = "correct horse battery"  # the root conftest's login password
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
GR_MEMBERS = {"httpStatus", "code", "codeDescription", "message", "moreInfo", "context", "uuid"}
DOCS = "https://apidocs.getresponse.com/en/v3"


def signup(server: Any, name: str = "Ann Example") -> str:
    email, browser = signup_session(server, name)
    browser.close()
    return email


def signup_session(server: Any, name: str) -> tuple[str, httpx.Client]:
    """A new account and the browser that signed it up (logged in from then on)."""
    email = f"u{secrets.token_hex(6)}@example.com"
    b = server.browser()
    csrf = CSRF.search(b.get("/signup").text)
    assert csrf
    r = b.post(
        "/signup",
        data={"email": email, "password": PASSWORD, "name": name, "csrf_token": csrf.group(1)},
    )
    assert r.status_code == 303, r.text
    return email, b


def assert_gr_error(r: httpx.Response, status: int, code: int) -> dict[str, Any]:
    """GetResponse's error body (SPEC §1.4), its uuid equal to the X-Request-Id header."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert GR_MEMBERS <= set(body), body
    assert body["httpStatus"] == status and body["code"] == code, body
    assert body["codeDescription"] and body["message"]
    assert body["moreInfo"] == f"{DOCS}/errors/{code}"
    assert isinstance(body["context"], dict)
    assert body["uuid"] and body["uuid"] == r.headers["x-request-id"]
    return dict(body)


class Account:
    """One user who connected the shared application; calls the API with its token."""

    def __init__(self, server: Any, name: str = "Ann Example", **authorize: str) -> None:
        self.server = server
        self.name = name
        self.email, browser = signup_session(server, name)
        try:
            r = server.authorize(server.client, self.email, browser=browser, **authorize)
        finally:
            browser.close()
        code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
        r = server.token(server.client, grant_type="authorization_code", code=code)
        assert r.status_code == 200, r.text
        self.tokens: dict[str, Any] = r.json()
        self.token = str(self.tokens["access_token"])

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.server.api(method, path, self.token, **kw)  # type: ignore[no-any-return]

    def create(self, email: str, name: str = "Sender") -> httpx.Response:
        return self.call("POST", "/v3/from-fields", json={"email": email, "name": name})
