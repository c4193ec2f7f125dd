"""``grant_type=refresh_token``: rotation, scope, the retry grace window, reuse detection.

SPEC §1.2; RFC 6749 §6; RFC 9700 §4.14.2.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from oauth_support import HEX40, Codes, assert_oauth_error


def refresh(server: Any, token: str, client: Any = None, **form: str) -> Any:
    return server.token(
        client or server.client, grant_type="refresh_token", refresh_token=token, **form
    )


def works(server: Any, access_token: str) -> bool:
    r = server.api("GET", "/v3/accounts", access_token)
    assert r.status_code in (200, 401), r.text
    return r.status_code == 200


def test_refresh_rotates_both_tokens(server: Any, codes: Codes) -> None:
    first = codes.tokens()
    r = refresh(server, first["refresh_token"])
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    second = r.json()
    assert list(second) == ["access_token", "expires_in", "token_type", "scope", "refresh_token"]
    assert HEX40.fullmatch(second["access_token"]) and HEX40.fullmatch(second["refresh_token"])
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["expires_in"] == 3600 and second["token_type"] == "Bearer"
    assert second["scope"] is None
    assert works(server, second["access_token"])
    # The successor rotates on in turn.
    third = refresh(server, second["refresh_token"])
    assert third.status_code == 200
    assert third.json()["refresh_token"] not in (first["refresh_token"], second["refresh_token"])


def test_old_access_token_keeps_working_until_it_expires(server: Any, codes: Codes) -> None:
    first = codes.tokens()
    assert refresh(server, first["refresh_token"]).status_code == 200
    assert works(server, first["access_token"])


def test_missing_or_unknown_refresh_token(server: Any) -> None:
    r = server.token(server.client, grant_type="refresh_token")
    assert_oauth_error(r, 400, "invalid_request")
    assert_oauth_error(refresh(server, "f" * 40), 400, "invalid_grant")


def test_an_access_token_is_not_a_refresh_token(server: Any, codes: Codes) -> None:
    t = codes.tokens()
    assert_oauth_error(refresh(server, t["access_token"]), 400, "invalid_grant")
    assert works(server, t["access_token"])


def test_another_client_cannot_use_a_refresh_token(
    server: Any, codes: Codes, other_client: Any
) -> None:
    t = codes.tokens()
    assert_oauth_error(refresh(server, t["refresh_token"], other_client), 400, "invalid_grant")
    assert works(server, t["access_token"])
    assert refresh(server, t["refresh_token"]).status_code == 200


def test_refresh_may_narrow_the_scope(server: Any, codes: Codes) -> None:
    t = codes.tokens()
    r = refresh(server, t["refresh_token"], scope="account.read")
    assert r.status_code == 200, r.text
    narrowed = r.json()
    assert narrowed["scope"] == "account.read"
    assert server.api("GET", "/v3/accounts", narrowed["access_token"]).status_code == 200
    assert server.api("GET", "/v3/from-fields", narrowed["access_token"]).status_code == 403
    # The narrowed grant cannot be widened again.
    wider = refresh(server, narrowed["refresh_token"], scope="account.read from-fields.read")
    assert_oauth_error(wider, 400, "invalid_scope")
    # Without scope a refresh keeps what the token has.
    same = refresh(server, narrowed["refresh_token"])
    assert same.status_code == 200 and same.json()["scope"] == "account.read"


def test_refresh_cannot_widen_a_scoped_grant(server: Any, codes: Codes) -> None:
    t = codes.tokens(scope="from-fields.read")
    assert t["scope"] == "from-fields.read"
    for scope in ("account.read", "from-fields.read from-fields.write", "nope"):
        assert_oauth_error(refresh(server, t["refresh_token"], scope=scope), 400, "invalid_scope")
    # A refused scope does not spend the refresh token.
    ok = refresh(server, t["refresh_token"], scope="from-fields.read")
    assert ok.status_code == 200 and ok.json()["scope"] == "from-fields.read"


def test_retry_within_grace_returns_the_same_pair(server: Any, codes: Codes) -> None:
    """A client that lost the response and retries gets the very same pair back."""
    t = codes.tokens()
    first = refresh(server, t["refresh_token"])
    retry = refresh(server, t["refresh_token"])
    assert first.status_code == 200 and retry.status_code == 200, retry.text
    a, b = first.json(), retry.json()
    assert b["access_token"] == a["access_token"]
    assert b["refresh_token"] == a["refresh_token"]
    assert b["token_type"] == "Bearer" and b["scope"] is None
    assert 3590 <= b["expires_in"] <= 3600
    assert works(server, b["access_token"])
    # The pair the retry returned is live: its refresh token rotates normally.
    nxt = refresh(server, b["refresh_token"])
    assert nxt.status_code == 200 and nxt.json()["refresh_token"] != b["refresh_token"]


def test_retry_within_grace_keeps_the_narrowed_scope(server: Any, codes: Codes) -> None:
    t = codes.tokens()
    first = refresh(server, t["refresh_token"], scope="account.read").json()
    retry = refresh(server, t["refresh_token"], scope="account.read").json()
    assert retry["access_token"] == first["access_token"]
    assert retry["scope"] == "account.read"


def test_replaying_a_refresh_token_after_its_successor_was_used_revokes_the_grant(
    server: Any, codes: Codes
) -> None:
    t = codes.tokens()
    second = refresh(server, t["refresh_token"]).json()
    third = refresh(server, second["refresh_token"]).json()
    assert works(server, third["access_token"])

    r = refresh(server, t["refresh_token"])  # only the immediate predecessor is forgiven
    assert_oauth_error(r, 400, "invalid_grant")

    assert not works(server, third["access_token"])
    assert not works(server, t["access_token"])
    assert_oauth_error(refresh(server, third["refresh_token"]), 400, "invalid_grant")


def test_replaying_the_predecessor_of_a_used_successor_after_another_retry(
    server: Any, codes: Codes
) -> None:
    t = codes.tokens()
    second = refresh(server, t["refresh_token"]).json()
    third = refresh(server, second["refresh_token"]).json()
    # second is now the immediate predecessor of the unused third: a retry of it is fine.
    again = refresh(server, second["refresh_token"])
    assert again.status_code == 200 and again.json()["access_token"] == third["access_token"]


def test_refresh_grants_of_one_user_are_independent(server: Any, codes: Codes) -> None:
    a, b = codes.tokens(), codes.tokens()
    second = refresh(server, a["refresh_token"]).json()
    refresh(server, second["refresh_token"])
    refresh(server, a["refresh_token"])  # reuse: grant of ``a`` revoked
    assert works(server, b["access_token"])
    assert refresh(server, b["refresh_token"]).status_code == 200


# --- grace off, grace elapsed --------------------------------------------------------------------


@pytest.fixture(scope="module")
def grace0_codes(grace0_server: Any) -> Iterator[Codes]:
    c = Codes(grace0_server)
    yield c
    c.close()


def test_without_grace_any_reuse_revokes_the_grant(grace0_server: Any, grace0_codes: Codes) -> None:
    s = grace0_server
    t = grace0_codes.tokens()
    second = refresh(s, t["refresh_token"])
    assert second.status_code == 200
    new = second.json()
    assert works(s, new["access_token"])

    assert_oauth_error(refresh(s, t["refresh_token"]), 400, "invalid_grant")

    assert not works(s, new["access_token"])
    assert_oauth_error(refresh(s, new["refresh_token"]), 400, "invalid_grant")


def test_reuse_after_the_grace_window_revokes_the_grant(grace1_server: Any) -> None:
    s = grace1_server
    codes = Codes(s)
    try:
        t = codes.tokens()
        new = refresh(s, t["refresh_token"]).json()
        time.sleep(2.1)
        assert_oauth_error(refresh(s, t["refresh_token"]), 400, "invalid_grant")
        assert not works(s, new["access_token"])
        assert_oauth_error(refresh(s, new["refresh_token"]), 400, "invalid_grant")
    finally:
        codes.close()
