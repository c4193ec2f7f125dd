"""MyTemplateMaker in-process (httpx's ASGI transport) against a live ``consentry serve``.

Covers what the browser test does not: a denied consent, a forged callback, the refresh
notice, and "Reconnect" after the grant was revoked behind the app's back.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from demo_support import signup

from consentry.client import Provider

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))
from mytemplatemaker.app import Config, create_app  # noqa: E402

PORT = 18999  # never listened on: the "browser" below does not follow the callback itself
CALLBACK = f"http://127.0.0.1:{PORT}/gr_callback"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def registered(server: Any) -> Any:
    return server.new_client((CALLBACK,))


@pytest.fixture
async def mtm(server: Any, registered: Any, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    config = Config(
        client_id=registered.client_id,
        client_secret=registered.client_secret,
        redirect_uri=CALLBACK,
        provider=Provider.consentry(server.url),
        token_file=tmp_path / "tokens.json",
    )
    app = create_app(config)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=f"http://127.0.0.1:{PORT}",
            follow_redirects=True,
        ) as client,
    ):
        yield client


def _to_provider(server: Any, registered: Any, location: str, email: str, decision: str) -> str:
    """Play the user at the provider; return the callback path and query for MyTemplateMaker."""
    assert location.startswith(f"{server.url}/oauth2_authorize.html?")
    params = dict(parse_qsl(urlsplit(location).query))
    r = server.authorize(registered, email, decision=decision, **params)
    assert r.status_code in (302, 303), r.text
    back = urlsplit(r.headers["location"])
    return f"{back.path}?{back.query}"


async def _connect(
    server: Any, registered: Any, mtm: httpx.AsyncClient, email: str
) -> httpx.Response:
    r = await mtm.get("/connect", follow_redirects=False)
    assert r.status_code == 303
    return await mtm.get(_to_provider(server, registered, r.headers["location"], email, "allow"))


async def test_pages_use_no_scripts_and_send_a_strict_csp(mtm: httpx.AsyncClient) -> None:
    r = await mtm.get("/")
    assert r.status_code == 200 and "Connect your GetResponse account" in r.text
    assert "<script" not in r.text.lower()
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script" not in csp  # scripts fall back to 'none'
    assert r.headers["referrer-policy"] == "no-referrer"  # the callback URL carries the code
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


async def test_connect_then_refresh_notice(
    server: Any, registered: Any, mtm: httpx.AsyncClient, tmp_path: Path
) -> None:
    email = signup(server, "Refresh Fan")
    r = await _connect(server, registered, mtm, email)
    assert r.status_code == 200 and "Your account is connected." in r.text
    assert email in r.text and "No token refresh yet." in r.text

    # The access token reaches its expiry: the next page load refreshes it on the way.
    path = tmp_path / "tokens.json"
    document = json.loads(path.read_text())
    (key,) = document["tokens"]
    old = dict(document["tokens"][key])
    document["tokens"][key]["expires_at"] = time.time() - 1
    path.write_text(json.dumps(document))
    r = await mtm.get("/")
    assert "Token refreshed at" in r.text and email in r.text
    new = json.loads(path.read_text())["tokens"][key]
    assert new["refresh_token"] != old["refresh_token"]

    form = {"csrf_token": CSRF.search(r.text).group(1)}  # type: ignore[union-attr]
    r = await mtm.post("/refresh", data=form)
    assert "Token refreshed at" in r.text and "New tokens received" in r.text

    r = await mtm.post("/from-fields", data=form | {"name": "Shop", "email": "not-an-email"})
    assert r.status_code == 200 and "Could not add not-an-email" in r.text  # the API's 1000
    r = await mtm.post("/from-fields", data={"name": "Shop", "email": "shop@example.com"})
    assert "The form expired" in r.text  # no CSRF token, nothing added
    assert "shop@example.com" not in r.text

    # A forged callback (login CSRF) is refused and does not disconnect the account.
    forged = f"/gr_callback?code={secrets.token_hex(20)}&state={secrets.token_urlsafe(32)}"
    assert (await mtm.get(forged)).status_code == 400
    assert email in (await mtm.get("/")).text


async def test_denied_consent_is_explained(
    server: Any, registered: Any, mtm: httpx.AsyncClient
) -> None:
    r = await mtm.get("/connect", follow_redirects=False)
    callback = _to_provider(server, registered, r.headers["location"], signup(server), "deny")
    r = await mtm.get(callback)
    assert r.status_code == 200 and "nothing was shared" in r.text
    assert "Connect your GetResponse account" in r.text


async def test_forged_callback_is_refused(mtm: httpx.AsyncClient) -> None:
    await mtm.get("/connect", follow_redirects=False)
    r = await mtm.get(
        f"/gr_callback?code={secrets.token_hex(20)}&state={secrets.token_urlsafe(32)}"
    )
    assert r.status_code == 400 and "not for this browser" in r.text


async def test_revoked_grant_shows_reconnect(
    server: Any, registered: Any, mtm: httpx.AsyncClient, tmp_path: Path
) -> None:
    email = signup(server, "Revoked Elsewhere")
    assert (await _connect(server, registered, mtm, email)).status_code == 200
    # The user revokes the app at the provider (here: the grant's refresh token, RFC 7009).
    (stored,) = json.loads((tmp_path / "tokens.json").read_text())["tokens"].values()
    revoke = httpx.post(
        f"{server.url}/v3/token/revoke",
        auth=registered.auth,
        data={"token": stored["refresh_token"]},
    )
    assert revoke.status_code == 200

    r = await mtm.get("/")
    assert "Please reconnect your account" in r.text
    link = re.search(r'href="([^"]+)" id="reconnect"', r.text)
    assert link is not None
    location = link.group(1).replace("&amp;", "&")
    r = await mtm.get(_to_provider(server, registered, location, email, "allow"))
    assert "Your account is connected." in r.text and email in r.text


def test_configuration_picks_the_provider_from_the_environment(tmp_path: Path) -> None:
    base = {"MYTEMPLATEMAKER_CLIENT_ID": "id", "MYTEMPLATEMAKER_CLIENT_SECRET": "secret"}
    default = Config.from_env(base)
    assert default.problems == () and default.provider is not None
    assert default.provider.token_url == "http://127.0.0.1:8000/v3/token"
    assert default.redirect_uri == "http://127.0.0.1:8001/gr_callback"

    gr = Config.from_env(base | {"MYTEMPLATEMAKER_PROVIDER": "getresponse"}).provider
    assert (
        gr is not None and gr.authorize_url == "https://app.getresponse.com/oauth2_authorize.html"
    )

    env = base | {
        "MYTEMPLATEMAKER_PROVIDER": "getresponse-max",
        "MYTEMPLATEMAKER_MAX_DOMAIN": "news.example.com",
        "MYTEMPLATEMAKER_MAX_TLD": "pl",
        "MYTEMPLATEMAKER_TOKEN_FILE": str(tmp_path / "t.json"),
    }
    mx = Config.from_env(env)
    assert mx.provider is not None and mx.token_file == tmp_path / "t.json"
    assert mx.provider.authorize_url == "https://news.example.com/oauth2_authorize.html"
    assert (mx.provider.api_url, mx.provider.x_domain) == (
        "https://api3.getresponse360.pl/v3",
        "news.example.com",
    )

    assert Config.from_env({}).problems  # no credentials: the app explains what to set
    assert Config.from_env(base | {"MYTEMPLATEMAKER_PROVIDER": "getresponse-max"}).problems
    assert Config.from_env(base | {"MYTEMPLATEMAKER_PROVIDER": "nope"}).problems
