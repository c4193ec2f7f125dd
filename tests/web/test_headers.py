"""Security headers on every page response, and error pages without internals."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from pagetools import csrf_for, developer_with_app, signup

import consentry.web

TEMPLATES = Path(consentry.web.__file__).with_name("templates")


def assert_page_headers(r: httpx.Response) -> None:
    csp = r.headers.get("content-security-policy", "")
    directives = {d.strip().split(" ")[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", csp
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, csp
    script = directives.get("script-src", directives.get("default-src", ""))
    assert script in ("script-src 'self'", "default-src 'none'"), csp
    assert r.headers.get("x-frame-options") == "DENY"
    assert r.headers.get("x-content-type-options") == "nosniff"
    assert r.headers.get("referrer-policy") == "no-referrer"


ANONYMOUS = [
    ("GET", "/"),
    ("GET", "/login"),
    ("GET", "/signup"),
    ("GET", "/apps"),  # a redirect to the login page
    ("GET", "/apps/new"),
    ("GET", "/connected-apps"),
    ("GET", "/no/such/page"),  # 404 page
    ("GET", "/oauth2_authorize.html"),  # 400 page
    ("GET", "/oauth2_authorize.html?client_id=nope"),
    ("GET", "/oauth2_authorize.html?%zz"),
    ("POST", "/login"),  # 403 page
    ("POST", "/logout"),
    ("PUT", "/login"),  # 405
    ("GET", "/apps/" + "0" * 32 + "/logo"),
    ("GET", "/static/style.css"),
    ("GET", "/static/copy.js"),
    ("GET", "/static/missing.css"),
]


@pytest.mark.parametrize(("method", "path"), ANONYMOUS)
def test_every_anonymous_response_carries_the_security_headers(
    server: Any, method: str, path: str
) -> None:
    r = httpx.request(method, server.url + path, timeout=30)
    assert_page_headers(r)
    if r.headers.get("content-type", "").startswith("text/html"):
        assert r.headers.get("cache-control") == "no-store"
        assert "Traceback" not in r.text and 'File "' not in r.text


def test_logged_in_pages_and_post_redirects_carry_the_security_headers(server: Any) -> None:
    dev, client = developer_with_app(server)
    for path in (
        "/",
        "/apps",
        "/apps/new",
        f"/apps/{client.client_id}",
        "/connected-apps",
        f"/apps/{client.client_id}/logo",
        "/apps/" + "f" * 32,
    ):
        assert_page_headers(dev.get(path))
    consent = dev.get(
        "/oauth2_authorize.html", params={"response_type": "code", "client_id": client.client_id}
    )
    assert_page_headers(consent)
    r = dev.post(f"/apps/{client.client_id}/secret", data={"csrf_token": csrf_for(dev, "/apps")})
    assert r.status_code == 303
    assert_page_headers(r)
    r = dev.post("/logout", data={"csrf_token": csrf_for(dev, "/apps")})
    assert r.status_code == 303
    assert_page_headers(r)


def test_static_files_are_not_sniffed_and_have_real_types(server: Any) -> None:
    css = httpx.get(server.url + "/static/style.css")
    assert css.headers["content-type"].startswith("text/css")
    js = httpx.get(server.url + "/static/copy.js")
    assert "javascript" in js.headers["content-type"]
    assert (
        css.headers["x-content-type-options"] == js.headers["x-content-type-options"] == "nosniff"
    )


def test_too_large_form_is_a_page_not_a_crash(server: Any) -> None:
    b = server.browser()
    signup(b)
    r = b.post(
        "/login",
        content=b"a=" + b"x" * 200_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413
    assert_page_headers(r)
    assert "<h1>" in r.text


def test_templates_have_no_inline_script_or_style() -> None:
    """CSP forbids them; a page relying on one would silently break."""
    for path in TEMPLATES.glob("*.html"):
        html = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag, (path.name, tag)
        assert not re.search(r"<style\b", html), path.name
        assert not re.search(r"\sstyle=", html), path.name
        assert not re.search(r"\son[a-z]+=", html), path.name
        assert "javascript:" not in html, path.name


def test_every_post_form_carries_a_csrf_token() -> None:
    for path in TEMPLATES.glob("*.html"):
        html = path.read_text()
        for form in re.findall(r"<form\b.*?</form>", html, flags=re.S):
            if 'method="post"' in form:
                assert 'name="csrf_token"' in form, (path.name, form[:80])
