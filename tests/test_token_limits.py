"""Rate limits at the token endpoint: per client, and on failed client authentication."""

from __future__ import annotations

from typing import Any

import httpx


def test_guessing_a_client_secret_is_throttled_even_for_the_right_secret(make_server: Any) -> None:
    server = make_server(client_auth_failures="3")
    client = server.client
    other = server.new_client()
    url = f"{server.url}/v3/token"
    form = {"grant_type": "client_credentials"}
    for _ in range(3):
        r = httpx.post(url, data=form, auth=(client.client_id, "wrong" * 8))
        assert r.status_code == 401
    r = httpx.post(url, data=form, auth=client.auth)
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["code"] == 1015 and body["error"] == "temporarily_unavailable"
    assert body["context"]["currentLimit"] == 3
    assert int(r.headers["Retry-After"]) > 0
    # Another application is not affected by the guessing against this one.
    assert httpx.post(url, data=form, auth=other.auth).status_code == 200


def test_token_requests_per_client_per_second_are_limited(make_server: Any) -> None:
    server = make_server(token_rate_limit_per_second="3")
    client = server.client
    with httpx.Client() as http:
        statuses = [
            http.post(
                f"{server.url}/v3/token", data={"grant_type": "client_credentials"},
                auth=client.auth,
            ).status_code
            for _ in range(12)
        ]
    assert 429 in statuses
    assert 3 <= statuses.count(200) <= 9, statuses


def test_a_body_over_a_small_configured_limit_is_413_on_the_fast_lane_too(
    make_server: Any,
) -> None:
    # 2,000 bytes with a Content-Length: the server's fast lane reads it whole (up to 16 KiB)
    # before the endpoint runs; the configured limit still applies to it.
    server = make_server(max_body_bytes="1000")
    client = server.client
    url = f"{server.url}/v3/token"
    small = {"grant_type": "client_credentials"}
    big = {"grant_type": "client_credentials", "scope": "x" * 2000}
    with httpx.Client() as http:
        assert http.post(url, data=small, auth=client.auth).status_code == 200
        r = http.post(url, data=big, auth=client.auth)
        assert r.status_code == 413, r.text
        assert r.json()["error"] == "invalid_request"
        r = http.post(f"{server.url}/v3/token/introspect", data={"token": "t" * 2000},
                      auth=client.auth)
        assert r.status_code == 413, r.text
