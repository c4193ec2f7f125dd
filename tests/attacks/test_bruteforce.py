"""Online password guessing and credential stuffing on the login page (RFC 6819 §4.4.3.6
analogue for people's passwords; RFC 9700 §4.13 on trusting forwarded headers)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import httpx

from tests.attacks.support import PASSWORD, Server, csrf_of, from_address, signup


def try_login(b: httpx.Client, email: str, password: str, **headers: str) -> httpx.Response:
    return b.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(b, "/login")},
        headers=headers,
    )


def test_password_guessing_on_one_account_is_throttled(strict: Server) -> None:
    email, victim = signup(strict)
    victim.close()
    with strict.browser() as mallory:
        for i in range(3):  # CONSENTRY_LOGIN_LIMIT_PER_ACCOUNT=3 on this server
            assert try_login(mallory, email, f"guess {i} guess").status_code == 400
        # The next guess is refused before the password is checked: even the right one.
        for variant in (email, email.upper(), f"  {email} "):
            r = try_login(mallory, variant, PASSWORD)
            assert r.status_code == 429, (variant, r.status_code)
            assert "set-cookie" not in r.headers or "consentry_session" not in str(
                r.headers.get_list("set-cookie")
            )
        assert int(r.headers["retry-after"]) > 0


def test_credential_stuffing_from_one_address_is_throttled_and_forwarded_for_is_ignored(
    make_server: Callable[..., Server],
) -> None:
    crowd = make_server(login_limit_per_address="6", login_limit_per_account="0")
    email, victim = signup(crowd)
    victim.close()
    with crowd.browser() as mallory:
        for i in range(6):  # six different accounts, one guess each
            r = try_login(mallory, f"person{i}-{secrets.token_hex(3)}@example.com", "123456789")
            assert r.status_code == 400
        assert try_login(mallory, email, PASSWORD).status_code == 429
        # Claiming to be someone else through proxy headers changes nothing (proxy_headers off).
        for spoof in ("203.0.113.7", "198.51.100.1, 203.0.113.9"):
            r = try_login(mallory, email, PASSWORD, **{"X-Forwarded-For": spoof,
                                                        "X-Real-IP": spoof.split(",")[0]})
            assert r.status_code == 429, spoof
    # Only that address is paused: the account's owner, elsewhere, logs in.
    with from_address(crowd, "127.0.0.5") as owner:
        assert try_login(owner, email, PASSWORD).status_code == 303
