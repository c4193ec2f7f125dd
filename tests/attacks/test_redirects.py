"""Redirect manipulation, open redirectors, mix-up, callback CSRF and the implicit grant
(RFC 6819 §4.2.4, §4.4.1.7-8; RFC 9700 §4.1, §4.4, §4.7, §4.11, §4.12, §2.1.2)."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from consentry.client import AuthorizationError, Provider, StateMismatch
from consentry.client import Client as Toolkit
from tests.attacks.support import (
    PASSWORD,
    Client,
    Server,
    authorize,
    code_for,
    consent,
    csrf_of,
    redirect_params,
    signup,
)

CALLBACK = "https://mytemplatemaker.example.com/gr_callback"
TAMPERED = {
    "suffix": CALLBACK + "x",
    "path": CALLBACK + "/../../evil",
    "subpath": CALLBACK + "/evil",
    "query": CALLBACK + "?next=https://evil.example",
    "fragment": CALLBACK + "#@evil.example",
    "userinfo": "https://mytemplatemaker.example.com@evil.example/gr_callback",
    "userinfo2": "https://evil.example@mytemplatemaker.example.com/gr_callback",
    "port": "https://mytemplatemaker.example.com:8443/gr_callback",
    "host suffix": "https://mytemplatemaker.example.com.evil.example/gr_callback",
    "subdomain": "https://evil.mytemplatemaker.example.com/gr_callback",
    "scheme": "http://mytemplatemaker.example.com/gr_callback",
    "case": "https://MyTemplateMaker.example.com/gr_callback",
    "encoded": "https://mytemplatemaker.example.com/gr%5Fcallback",
    "trailing slash": CALLBACK + "/",
    "whitespace": CALLBACK + " ",
    "evil": "https://evil.example/gr_callback",
    "javascript": "javascript:alert(1)//",
}


def assert_error_page_not_redirect(r: httpx.Response) -> None:
    assert r.status_code == 400, (r.status_code, r.headers.get("location"))
    assert "location" not in r.headers
    assert r.headers["content-type"].startswith("text/html")
    assert "evil" not in r.text


@pytest.mark.parametrize("name", sorted(TAMPERED))
def test_tampered_redirect_uri_gets_an_error_page_never_a_redirect(
    server: Server, victim_app: Client, shared_victim: tuple, name: str
) -> None:
    _email, browser = shared_victim
    # Even with a bad response_type (an error that would otherwise be redirected).
    for response_type in ("code", "bogus"):
        r = authorize(
            browser, victim_app, redirect_uri=TAMPERED[name], response_type=response_type
        )
        assert_error_page_not_redirect(r)


def test_unknown_or_duplicated_client_gets_an_error_page_never_a_redirect(
    server: Server, victim_app: Client, shared_victim: tuple
) -> None:
    _email, browser = shared_victim
    evil = "https://evil.example/cb"
    for query in (
        {"response_type": "code", "client_id": "0" * 32, "redirect_uri": evil},
        {"response_type": "bogus", "client_id": "nope", "redirect_uri": evil},
        [("response_type", "code"), ("client_id", victim_app.client_id),
         ("redirect_uri", CALLBACK), ("redirect_uri", evil)],
        [("response_type", "code"), ("client_id", victim_app.client_id),
         ("client_id", "0" * 32), ("redirect_uri", evil)],
    ):
        r = browser.get("/oauth2_authorize.html?" + urlencode(query))
        assert_error_page_not_redirect(r)


EVIL_NEXT = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example",
    "https:evil.example",
    "/oauth2_authorize.html?response_type=code&client_id=x&redirect_uri=https://evil.example",
    "javascript:alert(1)",
]


def test_login_never_redirects_to_a_url_from_the_request(server: Server) -> None:
    email, b = signup(server)
    for target in EVIL_NEXT:
        b.post("/logout", data={"csrf_token": csrf_of(b)})
        # The victim follows the attacker's link to the login page and logs in.
        link = "/login?" + urlencode({"next": target})
        r = b.post(
            link,
            data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(b, link),
                  "next": target},
        )
        assert r.status_code == 303, r.text
        location = r.headers["location"]
        parts = urlsplit(location)
        assert not parts.scheme and not parts.netloc and location.startswith("/"), location
        assert "\\" not in location and not location.startswith("//"), location
        assert "evil" not in location, location
        # Logged in already: the login page itself sends onwards, and still not away.
        again = b.get(link)
        if again.status_code in (302, 303):
            assert "evil" not in again.headers["location"], again.headers["location"]
            assert not urlsplit(again.headers["location"]).netloc
    # Signing up through the attacker's link does not send the new user away either.
    with server.browser() as fresh:
        link = "/signup?" + urlencode({"next": EVIL_NEXT[0]})
        r = fresh.post(
            link,
            data={"email": f"x{secrets.token_hex(6)}@example.com", "password": PASSWORD,
                  "name": "New", "csrf_token": csrf_of(fresh, link), "next": EVIL_NEXT[0]},
        )
        assert r.status_code == 303 and r.headers["location"].startswith("/"), r.headers
        assert "evil" not in r.headers["location"]


def test_every_authorization_response_names_the_issuer(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    """Mix-up (RFC 9700 §4.4, RFC 9207): success, denial and errors all carry ``iss``."""
    issuer = httpx.get(f"{server.url}/.well-known/oauth-authorization-server").json()
    assert issuer["authorization_response_iss_parameter_supported"] is True
    _email, browser = victim
    denied = consent(browser, authorize(browser, victim_app, scope="account.read"), "deny")
    assert redirect_params(denied)["error"] == "access_denied"
    responses = {
        "allow": consent(browser, authorize(browser, victim_app)),
        "deny": denied,
        "error": authorize(browser, victim_app, response_type="bogus"),
        "bad scope": authorize(browser, victim_app, scope="admin"),
    }
    for name, r in responses.items():
        assert r.status_code in (302, 303), name
        q = redirect_params(r)
        assert q.get("iss") == issuer["issuer"], (name, q)


def test_state_comes_back_byte_for_byte(server: Server, victim_app: Client, victim: tuple) -> None:
    """The client's CSRF defence on its callback relies on getting its state back intact."""
    _email, browser = victim
    state = "a b&c=d%25é/?#\"'<>" + "x" * 100
    for response in (
        consent(browser, authorize(browser, victim_app, state=state)),
        authorize(browser, victim_app, state=state, response_type="bogus"),
    ):
        assert redirect_params(response)["state"] == state


def test_toolkit_rejects_a_forged_callback(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    """CSRF on the client's callback (RFC 9700 §4.7): Mallory makes the victim's browser
    deliver *her* code to the client. The toolkit's state check refuses it."""
    toolkit = Toolkit(
        Provider.consentry(server.url),
        victim_app.client_id,
        victim_app.client_secret,
        redirect_uri=CALLBACK,
    )
    kept = toolkit.start()  # the victim's own authorization attempt
    _, mallory = signup(server, "Mallory")
    mallorys = code_for(mallory, victim_app, state="mallorys-state")
    with pytest.raises(StateMismatch):
        toolkit.handle_callback({"code": mallorys, "state": "mallorys-state"}, kept, key="victim")
    with pytest.raises(StateMismatch):
        toolkit.handle_callback({"code": mallorys}, kept, key="victim")
    # Mix-up at the client (RFC 9207 §2.4): a response naming another issuer is refused.
    with pytest.raises(AuthorizationError) as refused:
        toolkit.handle_callback(
            {"code": mallorys, "state": kept.state, "iss": "https://evil.example"}, kept,
            key="victim",
        )
    assert refused.value.error == "invalid_issuer"


def test_redirects_after_a_post_are_303(server: Server) -> None:
    """RFC 9700 §4.12: a 307 would make the browser re-POST the password to the client."""
    email = server.new_user()  # set up without the pages: they are what is being tested
    app = server.client
    with server.browser() as b:
        login = b.post("/login", data={"email": email, "password": PASSWORD,
                                       "csrf_token": csrf_of(b, "/login")})
        assert login.status_code == 303, login.status_code
        page = authorize(b, app, scope="from-fields.read")
        assert page.status_code == 200
        r = consent(b, page)
        assert r.status_code == 303, r.status_code
        logout = b.post("/logout", data={"csrf_token": csrf_of(b)})
        assert logout.status_code == 303, logout.status_code


def test_implicit_grant_is_refused_unless_enabled(
    server: Server, victim_app: Client, victim: tuple
) -> None:
    """RFC 9700 §2.1.2: no access token in a URL fragment (browser history, referrers)."""
    _email, browser = victim
    r = authorize(browser, victim_app, response_type="token")
    assert r.status_code == 302
    assert "access_token" not in r.headers["location"]
    assert redirect_params(r)["error"] == "unauthorized_client"


DANGEROUS_REDIRECTS = [
    "https://*.evil.example/cb",
    "https://mytemplatemaker.example.com/cb#frag",
    "http://mytemplatemaker.example.com/cb",  # clear text on a public host
    "https://user:pass@mytemplatemaker.example.com/cb",
    "javascript:alert(1)",
    "data:text/html,hi",
    "/relative/cb",
    "https://mytemplatemaker.example.com/cb two",
]


def test_dangerous_redirect_uris_cannot_be_registered(server: Server) -> None:
    """Mallory registers an app whose redirect URI would make a good open redirector."""
    _email, mallory = signup(server, "Mallory")
    before = mallory.get("/apps").text
    for uri in DANGEROUS_REDIRECTS:
        files = {"logo": ("", b"", "application/octet-stream")}
        form = {"csrf_token": csrf_of(mallory, "/apps/new"), "name": "Innocent App",
                "description": "", "redirect_uris": uri}
        r = mallory.post("/apps/new", data=form, files=files)
        assert r.status_code == 400, (uri, r.status_code, r.headers.get("location"))
    assert mallory.get("/apps").text.count("Innocent App") == before.count("Innocent App") == 0
