"""Authorization server metadata (RFC 8414) matches what the server really does."""

from __future__ import annotations

from typing import Any

import httpx
from oauth_support import Codes, redirect_params


def metadata(server: Any) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/.well-known/oauth-authorization-server")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    return dict(r.json())


def test_metadata_names_every_endpoint(server: Any) -> None:
    m = metadata(server)
    assert m["issuer"] == server.url
    assert m["authorization_endpoint"] == f"{server.url}/oauth2_authorize.html"
    assert m["token_endpoint"] == f"{server.url}/v3/token"
    assert m["revocation_endpoint"] == f"{server.url}/v3/token/revoke"
    assert m["introspection_endpoint"] == f"{server.url}/v3/token/introspect"


def test_metadata_lists_grants_methods_and_pkce(server: Any) -> None:
    m = metadata(server)
    assert {"authorization_code", "refresh_token", "client_credentials"} <= set(
        m["grant_types_supported"]
    )
    assert "code" in m["response_types_supported"]
    for key in (
        "token_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
    ):
        assert {"client_secret_basic", "client_secret_post"} <= set(m[key]), key
        assert "none" not in m[key]
    assert m["code_challenge_methods_supported"] == ["S256"]
    assert m["authorization_response_iss_parameter_supported"] is True
    assert set(m["scopes_supported"]) == {"account.read", "from-fields.read", "from-fields.write"}


def test_issuer_equals_the_iss_sent_in_redirects(server: Any, codes: Codes) -> None:
    m = metadata(server)
    with httpx.Client(follow_redirects=False) as http:
        http.cookies = codes.browser.cookies
        ok = http.get(
            m["authorization_endpoint"],
            params={"response_type": "code", "client_id": server.client.client_id, "state": "s"},
        )
        err = http.get(
            m["authorization_endpoint"],
            params={"response_type": "nope", "client_id": server.client.client_id, "state": "s"},
        )
    assert redirect_params(ok)["iss"] == m["issuer"]
    assert redirect_params(err)["iss"] == m["issuer"]


def test_advertised_endpoints_work(server: Any, codes: Codes) -> None:
    m = metadata(server)
    c = server.client
    t = httpx.post(
        m["token_endpoint"],
        auth=c.auth,
        data={"grant_type": "authorization_code", "code": codes()},
    ).json()
    info = httpx.post(m["introspection_endpoint"], auth=c.auth, data={"token": t["access_token"]})
    assert info.json()["active"] is True
    assert (
        httpx.post(
            m["revocation_endpoint"], auth=c.auth, data={"token": t["refresh_token"]}
        ).status_code
        == 200
    )
    info = httpx.post(m["introspection_endpoint"], auth=c.auth, data={"token": t["access_token"]})
    assert info.json() == {"active": False}
