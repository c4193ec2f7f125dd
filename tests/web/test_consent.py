"""The consent page: what it shows, and that a decision issues at most one code."""

from __future__ import annotations

import re
import threading
from typing import Any

import httpx
from pagetools import REDIRECT, developer_with_app, png, signup

REQUEST_ID = re.compile(r'name="request_id" value="([^"]+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def consent_page(
    server: Any, client_id: str, browser: httpx.Client, **params: str
) -> httpx.Response:
    query = {"response_type": "code", "client_id": client_id, "state": "s-1", **params}
    page = browser.get("/oauth2_authorize.html", params=query)
    assert page.status_code == 200, page.text
    assert 'name="decision"' in page.text
    return page


def decide(browser: httpx.Client, page: httpx.Response, decision: str = "allow") -> httpx.Response:
    csrf, rid = CSRF.search(page.text), REQUEST_ID.search(page.text)
    assert csrf and rid
    return browser.post(
        "/oauth2_authorize.html",
        data={"csrf_token": csrf.group(1), "request_id": rid.group(1), "decision": decision},
    )


def test_consent_page_shows_app_developer_access_and_destination(server: Any) -> None:
    _dev, client = developer_with_app(
        server,
        name="Template Maker",
        description="Builds e-mail templates from your sender addresses.",
        logo=("logo.png", png(), "image/png"),
    )
    user = server.browser()
    email = signup(user, "Una User")
    page = consent_page(server, client.client_id, user, scope="from-fields.read")
    text = page.text
    assert "Template Maker" in text
    assert "Builds e-mail templates from your sender addresses." in text
    assert "Dev Eloper" in text and client.owner in text  # the developer
    assert "See your sender addresses" in text  # what it may access
    assert "mytemplatemaker.example.com" in text  # where the answer goes
    assert email in text
    assert f'src="/apps/{client.client_id}/logo"' in text
    assert 'value="allow"' in text and 'value="deny"' in text
    logo = user.get(f"/apps/{client.client_id}/logo")
    assert logo.status_code == 200 and logo.headers["content-type"] == "image/png"


def test_allow_twice_issues_one_code(server: Any) -> None:
    _dev, client = developer_with_app(server)
    user = server.browser()
    signup(user)
    page = consent_page(server, client.client_id, user)
    first = decide(user, page)
    assert first.status_code == 303
    assert first.headers["location"].startswith(REDIRECT + "?code=")
    again = decide(user, page)  # a double click, a reload that re-posts, or Back + Allow
    assert again.status_code == 400
    assert "location" not in again.headers
    assert "already answered" in again.text
    deny_after = decide(user, page, "deny")
    assert deny_after.status_code == 400


def test_concurrent_allows_issue_one_code(server: Any) -> None:
    _dev, client = developer_with_app(server)
    user = server.browser()
    signup(user)
    page = consent_page(server, client.client_id, user)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def click() -> None:
        with httpx.Client(base_url=server.url, cookies=user.cookies, timeout=30) as b:
            r = decide(b, page)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=click) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = [r for r in results if r.status_code == 303 and "code=" in r.headers["location"]]
    assert len(codes) == 1, [r.status_code for r in results]
    assert sorted(r.status_code for r in results) == [303, 400, 400, 400, 400]


def test_deny_sends_access_denied(server: Any) -> None:
    _dev, client = developer_with_app(server)
    user = server.browser()
    signup(user)
    r = decide(user, consent_page(server, client.client_id, user), "deny")
    assert r.status_code == 303
    assert r.headers["location"].startswith(REDIRECT + "?error=access_denied")
    assert "state=s-1" in r.headers["location"]


def test_consent_without_a_valid_csrf_token_is_refused(server: Any) -> None:
    _dev, client = developer_with_app(server)
    user = server.browser()
    signup(user)
    page = consent_page(server, client.client_id, user)
    rid = REQUEST_ID.search(page.text)
    assert rid
    for data in (
        {"request_id": rid.group(1), "decision": "allow"},
        {"request_id": rid.group(1), "decision": "allow", "csrf_token": "0" * 64},
    ):
        r = user.post("/oauth2_authorize.html", data=data)
        assert r.status_code == 403
    # The request is still answerable with the real token.
    assert decide(user, page).status_code == 303
