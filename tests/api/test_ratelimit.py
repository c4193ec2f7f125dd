"""Rate limits with GetResponse's numbers, headers and 429 body (SPEC §1.3)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest
from api_support import Account, assert_gr_error


def test_successful_responses_carry_rate_limit_headers(account: Account) -> None:
    r1 = account.call("GET", "/v3/accounts")
    r2 = account.call("GET", "/v3/from-fields")
    for r in (r1, r2):
        assert r.status_code == 200
        assert r.headers["X-RateLimit-Limit"] == "30000"
        assert re.fullmatch(r"\d+ seconds", r.headers["X-RateLimit-Reset"])
        assert 0 < int(r.headers["X-RateLimit-Reset"].split()[0]) <= 600
    assert int(r2.headers["X-RateLimit-Remaining"]) == int(r1.headers["X-RateLimit-Remaining"]) - 1
    assert int(r1.headers["X-RateLimit-Remaining"]) <= 29999


async def _burst(server: Any, token: str, n: int) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        await asyncio.gather(*(http.get("/healthz") for _ in range(n)))
        return list(
            await asyncio.gather(*(http.get("/v3/from-fields", headers=headers) for _ in range(n)))
        )


@pytest.fixture(scope="module")
def limited_account(limited_server: Any) -> Account:
    return Account(limited_server)


def test_fourth_call_in_a_second_is_429_1015(limited_server: Any, limited_account: Account) -> None:
    token = limited_account.token
    for _attempt in range(4):
        time.sleep(1.1)  # start in a fresh one-second window
        answers = asyncio.run(_burst(limited_server, token, 4))
        codes = sorted(r.status_code for r in answers)
        if codes == [200, 200, 200, 429]:
            break
    assert codes == [200, 200, 200, 429], "a busy machine kept crossing window edges"
    (limited,) = [r for r in answers if r.status_code == 429]
    body = assert_gr_error(limited, 429, 1015)
    assert body["context"]["currentLimit"] == 3
    assert re.fullmatch(r"\d+ seconds", body["context"]["timeToReset"])
    assert int(limited.headers["Retry-After"]) >= 1
    assert "X-RateLimit-Limit" in limited.headers


def test_limits_are_per_account(limited_server: Any, limited_account: Account) -> None:
    other = Account(limited_server)
    for _attempt in range(4):
        time.sleep(1.1)
        a = asyncio.run(_burst(limited_server, limited_account.token, 5))
        b = other.call("GET", "/v3/accounts")
        if sum(r.status_code == 429 for r in a) >= 1:
            break
    assert any(r.status_code == 429 for r in a)
    assert b.status_code == 200


def test_limit_resets_after_the_window(limited_server: Any, limited_account: Account) -> None:
    asyncio.run(_burst(limited_server, limited_account.token, 5))
    time.sleep(1.2)
    assert limited_account.call("GET", "/v3/accounts").status_code == 200


def test_refused_calls_of_a_known_account_also_carry_the_headers(account: Account) -> None:
    r = account.call("GET", "/v3/from-fields/nope")
    assert r.status_code == 404
    assert r.headers["X-RateLimit-Limit"] == "30000"
    assert re.fullmatch(r"\d+ seconds", r.headers["X-RateLimit-Reset"])
    assert int(r.headers["X-RateLimit-Remaining"]) < 30000
