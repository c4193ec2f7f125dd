"""Timing side channels: does a wrong answer take longer for an existing account or client?

Each pair of requests runs back to back, alternating the order, and a leak must be
consistent, large against the noise and not negligible against the request's cost (see
``support.timing_leak``), so a loaded CI machine does not make these flaky.
"""

from __future__ import annotations

import secrets

import httpx

from tests.attacks.support import Client, Server, csrf_of, paired_timings, signup, timing_leak


def test_login_time_does_not_reveal_whether_an_email_exists(lab: Server) -> None:
    email, b = signup(lab)  # this server does not throttle logins
    b.post("/logout", data={"csrf_token": csrf_of(b)})
    csrf = csrf_of(b, "/login")

    def wrong_password() -> None:
        r = b.post("/login", data={"email": email, "password": "not the password",
                                   "csrf_token": csrf})
        assert r.status_code == 400

    def unknown_email() -> None:
        r = b.post("/login", data={"email": f"nobody-{secrets.token_hex(4)}@example.com",
                                   "password": "not the password", "csrf_token": csrf})
        assert r.status_code == 400

    wrong_password()  # warm up both paths
    unknown_email()
    leak, summary = timing_leak(paired_timings(wrong_password, unknown_email, 10))
    assert not leak, summary


def test_token_endpoint_time_does_not_reveal_whether_a_client_exists(
    lab: Server, lab_app: Client
) -> None:
    c = httpx.Client(base_url=lab.url, timeout=30)
    form = {"grant_type": "client_credentials"}

    def wrong_secret() -> None:
        r = c.post("/v3/token", auth=(lab_app.client_id, secrets.token_hex(32)), data=form)
        assert r.status_code == 401

    def unknown_client() -> None:
        r = c.post("/v3/token", auth=(secrets.token_hex(16), secrets.token_hex(32)), data=form)
        assert r.status_code == 401

    with c:
        for _ in range(5):
            wrong_secret()
            unknown_client()
        leak, summary = timing_leak(paired_timings(wrong_secret, unknown_client, 40))
    assert not leak, summary
