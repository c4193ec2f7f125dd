"""Helpers for the page tests: act on the web pages the way a browser would (no JavaScript)."""

from __future__ import annotations

import io
import re
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRET = re.compile(r'id="client-secret"[^>]*>([0-9a-f]{64})<')
REDIRECT = "https://mytemplatemaker.example.com/gr_callback"


@dataclass
class WebClient:
    """An application registered through the pages; duck-types the root conftest's Client."""

    client_id: str
    client_secret: str
    redirect_uri: str
    owner: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.client_id, self.client_secret)


def csrf_of(page: httpx.Response) -> str:
    m = CSRF.search(page.text)
    assert m, page.text
    return m.group(1)


def csrf_for(browser: httpx.Client, path: str) -> str:
    page = browser.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page)


def signup(browser: httpx.Client, name: str = "Web User") -> str:
    """Create an account through the sign-up page; the browser ends up logged in."""
    email = f"w{secrets.token_hex(6)}@example.com"
    r = browser.post(
        "/signup",
        data={
            "name": name,
            "email": email,
            "password": PASSWORD,
            "csrf_token": csrf_for(browser, "/signup"),
        },
    )
    assert r.status_code == 303, r.text
    return email


def new_account(server: Any, name: str = "Web User") -> str:
    """A fresh account made through the sign-up page (quicker than the CLI)."""
    with server.browser() as b:
        return signup(b, name)


def login(browser: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return browser.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_for(browser, "/login")},
    )


def png(size: tuple[int, int] = (300, 200), color: tuple[int, ...] = (36, 87, 214)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def post_new_app(
    browser: httpx.Client,
    *,
    name: str = "Template Maker",
    redirect_uris: str = REDIRECT,
    description: str = "Makes templates.",
    logo: tuple[str, bytes, str] | None = None,
    csrf: str | None = None,
) -> httpx.Response:
    """Submit "Add new application" as a browser does: multipart, an empty file part if none."""
    data = {
        "name": name,
        "description": description,
        "redirect_uris": redirect_uris,
        "csrf_token": csrf if csrf is not None else csrf_for(browser, "/apps/new"),
    }
    files: dict[str, Any] = {"logo": logo or ("", b"", "application/octet-stream")}
    return browser.post("/apps/new", data=data, files=files)


def create_app(browser: httpx.Client, owner: str, **kw: Any) -> tuple[WebClient, httpx.Response]:
    """Register an app through the pages; returns it (with its one-time secret) and the page."""
    r = post_new_app(browser, **kw)
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert re.fullmatch(r"/apps/[0-9a-f]{32}", location), location
    page = browser.get(location)
    assert page.status_code == 200, page.text
    m = SECRET.search(page.text)
    assert m, "the new secret is shown on the page after saving"
    uris = kw.get("redirect_uris", REDIRECT).split()
    return WebClient(location.rsplit("/", 1)[1], m.group(1), uris[0], owner), page


def developer_with_app(server: Any, **kw: Any) -> tuple[httpx.Client, WebClient]:
    """A logged-in developer browser and an app it registered."""
    browser = server.browser()
    email = signup(browser, "Dev Eloper")
    client, _page = create_app(browser, email, **kw)
    return browser, client
