"""The GetResponse MAX preset end to end against a MAX account on a live consentry.

The preset authorizes on the account's custom domain and sends ``X-Domain`` on token and
API requests to api3.getresponse360.com. Here the custom domain is reached on loopback
with a ``Host`` header, and the token/API URLs are pointed at the local server with
``dataclasses.replace`` -- the X-Domain behaviour is the preset's own.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from toolkit_support import CALLBACK, open_authorize_url, shared_app

from consentry.client import APIError, Provider


@pytest.fixture(scope="module")
def max_account(server: Any) -> tuple[str, str, Any]:
    """A MAX account on its own domain, and an application registered inside it."""
    domain = f"max-{secrets.token_hex(4)}.example.test"
    email = server.new_user("Max Owner", max_domain=domain)
    app = server.new_client((CALLBACK,), owner=email, name="MyTemplateMaker MAX")
    return domain, email, app


def test_max_preset_end_to_end(
    server: Any, toolkit: Callable[..., Any], max_account: tuple[str, str, Any]
) -> None:
    domain, email, app = max_account
    preset = Provider.getresponse_max(f"https://{domain.upper()}/")
    assert preset.authorize_url == f"https://{domain}/oauth2_authorize.html"
    assert preset.api_url == "https://api3.getresponse360.com/v3"
    assert Provider.getresponse_max(domain, tld="pl").api_url == "https://api3.getresponse360.pl/v3"
    assert preset.x_domain == domain
    local = dataclasses.replace(
        preset,
        token_url=f"{server.url}/v3/token",
        api_url=f"{server.url}/v3",
        revoke_url=f"{server.url}/v3/token/revoke",
    )
    tk = toolkit(server, app=app, provider=local)
    client = tk.sync

    auth = client.start()
    assert urlsplit(auth.url).netloc == domain  # the custom-domain authorize URL
    # On the server's own host name the MAX application cannot be authorized ...
    with httpx.Client(base_url=server.url) as plain:
        wrong = plain.get(urlsplit(auth.url).path, params=urlsplit(auth.url).query)
    assert wrong.status_code == 400 and domain in wrong.text
    # ... on its domain (Host header) it can.
    callback = open_authorize_url(server, app, auth.url, email, host=domain)
    tokens = client.handle_callback(callback, auth, key="max")

    account = client.get("/accounts", key="max").data
    assert account["email"] == email
    client.post("/from-fields", key="max", json={"name": "MAX", "email": "max@news.example.test"})
    assert "max@news.example.test" in {
        f["email"] for f in client.get("/from-fields", key="max").data
    }
    assert all(r.headers["x-domain"] == domain for r in tk.requests.seen)  # token requests too
    refreshed = client.refresh(key="max")  # a refresh with X-Domain works
    assert refreshed.access_token != tokens.access_token

    # Without X-Domain (or with another domain) the server answers 1014.
    bearer = {"Authorization": f"Bearer {refreshed.access_token}"}
    for headers in (bearer, bearer | {"X-Domain": "other.example.test"}):
        r = httpx.get(f"{server.url}/v3/accounts", headers=headers)
        assert r.status_code == 401 and r.json()["code"] == 1014, r.text
    assert httpx.get(
        f"{server.url}/v3/accounts", headers=bearer | {"X-Domain": domain}
    ).status_code == 200  # fmt: skip
    r = httpx.post(
        f"{server.url}/v3/token",
        auth=app.auth,
        data={"grant_type": "refresh_token", "refresh_token": refreshed.refresh_token or ""},
    )
    assert (
        r.status_code == 401 and r.json()["code"] == 1014 and r.json()["error"] == "invalid_client"
    )

    # The same toolkit with X-Domain switched off cannot use the grant ...
    no_domain = toolkit(server, app=app, provider=dataclasses.replace(local, x_domain=None),
                        store=client.store)  # fmt: skip
    with pytest.raises(APIError) as exc:
        no_domain.sync.get("/accounts", key="max")
    assert exc.value.code == 1014
    # ... and did not spend it: the preset still works, and disconnects (RFC 7009) with X-Domain.
    assert client.get("/accounts", key="max").status_code == 200
    client.disconnect(key="max")
    assert httpx.get(
        f"{server.url}/v3/accounts",
        headers={"Authorization": f"Bearer {refreshed.access_token}", "X-Domain": domain},
    ).status_code == 401  # fmt: skip


def test_a_max_account_cannot_authorize_a_standard_application(
    server: Any, max_account: tuple[str, str, Any]
) -> None:
    """SPEC 1.3: a MAX account's users authorize on its domain, apps registered inside it."""
    domain, email, _ = max_account
    standard = shared_app(server)  # registered by a standard developer account
    query = {"response_type": "code", "client_id": standard.client_id, "state": "s"}
    for host in (None, domain):
        with httpx.Client(
            base_url=server.url, headers={"Host": host} if host else None
        ) as browser:  # fmt: skip
            server.login(browser, email)
            r = browser.get("/oauth2_authorize.html", params=query)
        assert r.status_code in (400, 403), (host, r.status_code)  # neither consent nor a code
