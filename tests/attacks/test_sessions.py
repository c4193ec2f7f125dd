"""CSRF on consent, login, logout and the account forms; session fixation; cookie flags;
clickjacking; consent phishing and script injection through an application's name
(RFC 6819 §4.4.1.8-9, §4.2.2-3; RFC 9700 §4.7, §4.16)."""

from __future__ import annotations

import re

import httpx

from tests.attacks.support import (
    PASSWORD,
    Client,
    Server,
    authorize,
    consent,
    csrf_of,
    redirect_params,
    signup,
    token_pair,
)
from tests.conftest import REQUEST_ID

COOKIE = "consentry_session"


def consent_form(browser: httpx.Client, app: Client, **params: str) -> tuple[str, str]:
    page = authorize(browser, app, **params)
    assert page.status_code == 200, page.text[:500]
    found = REQUEST_ID.search(page.text)
    assert found
    return csrf_of(browser), found.group(1)


def assert_refused(r: httpx.Response) -> None:
    assert r.status_code in (400, 403), (r.status_code, r.headers.get("location"))
    assert "location" not in r.headers, r.headers["location"]


def test_forged_consent_post_is_refused(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    _email, browser = victim
    csrf, request_id = consent_form(browser, victim_app, scope="account.read")
    _, mallory = signup(server, "Mallory")
    mallorys_csrf = csrf_of(mallory)
    forged = [
        {"request_id": request_id, "decision": "allow"},  # no token
        {"request_id": request_id, "decision": "allow", "csrf_token": ""},
        {"request_id": request_id, "decision": "allow", "csrf_token": mallorys_csrf},
        # the last digit changed (to "1" when it already was "0": 1 run in 16 sent the real token)
        {"request_id": request_id, "decision": "allow",
         "csrf_token": csrf[:-1] + ("1" if csrf.endswith("0") else "0")},
        {"request_id": request_id, "decision": "allow", "csrf_token": csrf.upper()},
    ]
    for form in forged:
        # Mallory's page auto-submits the form in the victim's browser (cookie attached).
        assert_refused(browser.post("/oauth2_authorize.html", data=form))
    # Not even with the victim's own token but without the victim's cookie.
    assert_refused(
        httpx.post(
            f"{server.url}/oauth2_authorize.html",
            data={"request_id": request_id, "decision": "allow", "csrf_token": csrf},
        )
    )
    # The request is still undecided: the victim's real click works.
    r = browser.post(
        "/oauth2_authorize.html",
        data={"request_id": request_id, "decision": "allow", "csrf_token": csrf},
    )
    assert r.status_code == 303 and "code" in redirect_params(r)


def test_consent_request_of_another_user_cannot_be_answered(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    """Mallory lures the victim into allowing *her* pending request (or the reverse)."""
    _email, browser = victim
    _, mallory = signup(server, "Mallory")
    _, mallorys_request = consent_form(mallory, victim_app, scope="from-fields.read")
    r = browser.post(
        "/oauth2_authorize.html",
        data={"request_id": mallorys_request, "decision": "allow",
              "csrf_token": csrf_of(browser)},
    )
    assert_refused(r)
    # And an answered request cannot be answered again (double submit, replayed form).
    csrf, request_id = consent_form(browser, victim_app, scope="from-fields.read")
    form = {"request_id": request_id, "decision": "allow", "csrf_token": csrf}
    assert browser.post("/oauth2_authorize.html", data=form).status_code == 303
    assert_refused(browser.post("/oauth2_authorize.html", data=form))


def test_account_forms_refuse_cross_site_posts(
    server: Server, victim_app: Client
) -> None:
    """Login CSRF, logout CSRF, revoking an app, new secret, deleting an app: every form."""
    email, victim = signup(server)
    token_pair(server, victim_app, victim)
    _, mallory = signup(server, "Mallory")
    foreign = csrf_of(mallory)
    app = victim_app.client_id
    for path, form in (
        ("/login", {"email": email, "password": PASSWORD}),
        ("/signup", {"email": "new@example.com", "password": PASSWORD, "name": "X"}),
        ("/logout", {}),
        (f"/connected-apps/{app}/revoke", {}),
        (f"/apps/{app}/secret", {}),
        (f"/apps/{app}/delete", {}),
    ):
        for token in (None, foreign):
            data = dict(form) if token is None else {**form, "csrf_token": token}
            r = victim.post(path, data=data)
            assert_refused(r)
    # Still logged in, still connected.
    assert "Victim App" in victim.get("/connected-apps").text


def test_login_rotates_the_session_id(server: Server) -> None:
    """Session fixation: Mallory plants a session cookie she knows before the victim logs in."""
    email, b = signup(server)
    b.post("/logout", data={"csrf_token": csrf_of(b)})
    b.cookies.clear()
    csrf = csrf_of(b, "/login")
    planted = b.cookies[COOKIE]
    r = b.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf})
    assert r.status_code == 303
    assert b.cookies[COOKIE] != planted
    # Mallory's copy of the planted cookie is not logged in.
    with server.browser() as mallory:
        mallory.cookies.set(COOKIE, planted)
        r = mallory.get("/connected-apps")
        assert r.status_code in (302, 303) and "/login" in r.headers["location"]


def test_logout_ends_the_session_on_the_server(server: Server) -> None:
    _email, b = signup(server)
    stolen = b.cookies[COOKIE]
    assert b.get("/connected-apps").status_code == 200
    assert b.post("/logout", data={"csrf_token": csrf_of(b)}).status_code == 303
    with server.browser() as thief:
        thief.cookies.set(COOKIE, stolen)
        r = thief.get("/connected-apps")
        assert r.status_code in (302, 303) and "/login" in r.headers["location"]


def _cookie_attributes(r: httpx.Response) -> str:
    found = [h for h in r.headers.get_list("set-cookie") if h.startswith(COOKIE + "=")]
    assert found, r.headers
    return found[0].lower()


def test_session_cookie_is_httponly_samesite_and_secure_over_https(
    server: Server, https_server: Server
) -> None:
    plain = _cookie_attributes(httpx.get(f"{server.url}/login"))
    assert "httponly" in plain and "samesite=lax" in plain
    secure = _cookie_attributes(httpx.get(f"{https_server.url}/login"))
    assert "httponly" in secure and "samesite=lax" in secure and "secure" in secure


def test_login_and_consent_pages_cannot_be_framed(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    """Clickjacking (RFC 9700 §4.16): Mallory frames the consent page under a decoy."""
    _email, browser = victim
    pages = {
        "consent": authorize(browser, victim_app, scope="account.read"),
        "login": httpx.get(f"{server.url}/login"),
        "error": authorize(browser, victim_app, redirect_uri="https://evil.example/"),
    }
    for name, r in pages.items():
        csp = r.headers.get("content-security-policy", "")
        assert re.search(r"frame-ancestors\s+'none'", csp), (name, csp)
        assert r.headers.get("x-frame-options", "").upper() == "DENY", name


def test_wider_scope_asks_for_consent_again(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    """A client cannot silently escalate a remembered narrow consent (RFC 6819 §4.2.3)."""
    _email, browser = victim
    page = authorize(browser, victim_app, scope="account.read")
    assert page.status_code == 200
    assert consent(browser, page).status_code == 303
    # The same access again: not asked (remembered consent).
    assert authorize(browser, victim_app, scope="account.read").status_code == 302
    for wider in ("account.read from-fields.write", "from-fields.read", None):
        params = {} if wider is None else {"scope": wider}
        r = authorize(browser, victim_app, **params)
        assert r.status_code == 200, (wider, r.headers.get("location"))
        assert 'name="decision"' in r.text


def test_application_name_cannot_inject_script_into_the_consent_page(
    server: Server, victim: tuple
) -> None:
    payload = '<script>alert(document.cookie)</script><img src=x onerror=alert(1)>"'
    evil = server.new_client(name=payload)
    _email, browser = victim
    page = authorize(browser, evil)
    assert page.status_code == 200
    assert payload not in page.text
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;" in page.text
    csp = page.headers["content-security-policy"]
    assert "'unsafe-inline'" not in csp
