"""Sign up, log in, log out: sessions, cookies, CSRF and failed-login throttling."""

from __future__ import annotations

import statistics
import time
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
from pagetools import PASSWORD, csrf_for, csrf_of, login, new_account, signup

COOKIE = "consentry_session"


def session_cookie(r: httpx.Response) -> SimpleCookie:
    headers = [v for v in r.headers.get_list("set-cookie") if v.startswith(COOKIE + "=")]
    assert len(headers) == 1, r.headers
    jar: SimpleCookie = SimpleCookie()
    jar.load(headers[0])
    return jar


def test_signup_logs_in_and_home_page_links_to_my_pages(server: Any) -> None:
    b = server.browser()
    email = signup(b, "Ada")
    home = b.get("/")
    assert home.status_code == 200
    assert email in home.text
    for link in ('href="/apps"', 'href="/apps/new"', 'href="/connected-apps"'):
        assert link in home.text


def test_anonymous_home_page_links_to_login_and_signup(server: Any) -> None:
    home = httpx.get(server.url + "/")
    assert home.status_code == 200
    assert 'href="/login"' in home.text and 'href="/signup"' in home.text


def test_session_cookie_is_httponly_samesite_lax_and_not_secure_on_http(server: Any) -> None:
    r = httpx.get(server.url + "/login")
    morsel = session_cookie(r)[COOKIE]
    assert morsel["httponly"]
    assert morsel["samesite"].lower() == "lax"
    assert not morsel["secure"]
    assert morsel["path"] == "/"


def test_session_cookie_is_secure_when_app_url_is_https(make_server: Any) -> None:
    s = make_server(app_url="https://consentry.example.com")
    morsel = session_cookie(httpx.get(s.url + "/login"))[COOKIE]
    assert morsel["secure"] and morsel["httponly"]
    assert morsel["samesite"].lower() == "lax"


def test_session_id_rotates_at_login_and_old_id_is_dead(server: Any) -> None:
    email = new_account(server)
    b = server.browser()
    page = b.get("/login")
    before = session_cookie(page)[COOKIE].value
    r = b.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(page)})
    assert r.status_code == 303
    after = session_cookie(r)[COOKIE].value
    assert after != before
    # The pre-login id does not carry the login: an attacker who planted it gains nothing.
    planted = httpx.get(server.url + "/apps", cookies={COOKIE: before})
    assert planted.status_code == 303 and planted.headers["location"].startswith("/login")
    assert b.get("/apps").status_code == 200


def test_login_continues_to_an_allowed_next_page_only(server: Any) -> None:
    email = new_account(server)
    b = server.browser()
    r = b.get("/apps/new")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fapps%2Fnew"
    page = b.get(r.headers["location"])
    r = b.post(
        "/login",
        data={
            "email": email,
            "password": PASSWORD,
            "next": "/apps/new",
            "csrf_token": csrf_of(page),
        },
    )
    assert r.headers["location"] == "/apps/new"
    # Anything else is never followed (no open redirect).
    b2 = server.browser()
    page = b2.get("/login")
    r = b2.post(
        "/login",
        data={
            "email": email,
            "password": PASSWORD,
            "next": "https://evil.example/",
            "csrf_token": csrf_of(page),
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_logout_ends_the_session(server: Any) -> None:
    b = server.browser()
    signup(b)
    token = csrf_for(b, "/apps")
    r = b.post("/logout", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert b.get("/apps").status_code == 303


def test_signup_rejects_duplicates_and_short_passwords(server: Any) -> None:
    b = server.browser()
    email = new_account(server)
    r = b.post(
        "/signup",
        data={
            "name": "X",
            "email": email,
            "password": PASSWORD,
            "csrf_token": csrf_for(b, "/signup"),
        },
    )
    assert r.status_code == 400 and "already exists" in r.text
    r = b.post(
        "/signup",
        data={
            "name": "X",
            "email": "new@example.com",
            "password": "short",
            "csrf_token": csrf_for(b, "/signup"),
        },
    )
    assert r.status_code == 400 and "at least 8" in r.text


@pytest.mark.parametrize("sent", [None, "0" * 64, "not-a-token"])
@pytest.mark.parametrize("path", ["/login", "/signup", "/logout"])
def test_account_forms_without_a_valid_csrf_token_are_refused(
    server: Any, path: str, sent: str | None
) -> None:
    email = new_account(server)
    b = server.browser()
    b.get("/login")  # has a session, but not the token of the form
    data = {"email": email, "password": PASSWORD, "name": "X"}
    if sent is not None:
        data["csrf_token"] = sent
    r = b.post(path, data=data)
    assert r.status_code == 403
    assert "Form expired" in r.text
    assert COOKIE not in r.headers.get("set-cookie", "")


def test_csrf_token_of_another_session_is_refused(server: Any) -> None:
    email = new_account(server)
    other = csrf_for(server.browser(), "/login")
    b = server.browser()
    b.get("/login")
    r = b.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": other})
    assert r.status_code == 403


# --- failed-login throttling ------------------------------------------------------------------


def test_wrong_password_and_unknown_email_answer_alike(throttled: Any) -> None:
    email = new_account(throttled)
    b = throttled.browser()
    wrong = login(b, email, "wrong password!")
    unknown = login(b, "nobody-" + email, "wrong password!")
    assert wrong.status_code == unknown.status_code == 400
    assert "Wrong email or password." in wrong.text and "Wrong email or password." in unknown.text


def test_unknown_email_costs_a_password_check_too(throttled: Any) -> None:
    """No fast path for unknown emails: timing does not tell which accounts exist."""
    email = new_account(throttled)
    b = throttled.browser()

    def timed(who: str) -> float:
        token = csrf_for(b, "/login")
        started = time.perf_counter()
        r = b.post("/login", data={"email": who, "password": "x" * 12, "csrf_token": token})
        elapsed = time.perf_counter() - started
        assert r.status_code == 400
        return elapsed

    # Alternate, 2 per account keeps under the per-account limit of 3.
    known = [timed(email) for _ in range(2)]
    unknown = [timed(f"ghost{i}-{email}") for i in range(4)]
    assert statistics.median(unknown) > 0.5 * statistics.median(known)


def test_account_is_throttled_after_n_failures_even_for_the_right_password(throttled: Any) -> None:
    email = new_account(throttled)
    b = throttled.browser()
    for _ in range(3):  # CONSENTRY_LOGIN_LIMIT_PER_ACCOUNT=3
        assert login(b, email, "wrong password!").status_code == 400
    r = login(b, email)  # the right password
    assert r.status_code == 429
    assert "Too many failed attempts" in r.text and "10 minutes" in r.text
    assert int(r.headers["retry-after"]) > 0
    assert COOKIE not in r.headers.get("set-cookie", ""), "no session while throttled"
    # Email case and spaces do not make a new counter.
    assert login(b, "  " + email.upper()).status_code == 429


def test_throttling_one_account_leaves_others_alone(throttled: Any) -> None:
    victim, other = new_account(throttled), new_account(throttled)
    b = throttled.browser()
    for _ in range(3):
        login(b, victim, "wrong password!")
    assert login(b, victim).status_code == 429
    assert login(b, other).status_code == 303


def test_successful_logins_are_not_counted(throttled: Any) -> None:
    email = new_account(throttled)
    for _ in range(5):
        assert login(throttled.browser(), email).status_code == 303
    b = throttled.browser()
    assert login(b, email, "wrong password!").status_code == 400
    assert login(b, email).status_code == 303


def test_client_address_is_throttled_across_accounts(address_throttled: Any) -> None:
    s = address_throttled
    real = new_account(s)
    b = s.browser()
    for i in range(4):  # CONSENTRY_LOGIN_LIMIT_PER_ADDRESS=4, each on a different email
        assert login(b, f"guess{i}@example.com", "wrong password!").status_code == 400
    r = login(b, real)
    assert r.status_code == 429
    assert "from your network" in r.text


def test_default_limit_is_ten_failures_per_account(make_server: Any) -> None:
    s = make_server()
    email = new_account(s)
    b = s.browser()
    for _ in range(10):
        assert login(b, email, "wrong password!").status_code == 400
    assert login(b, email).status_code == 429
