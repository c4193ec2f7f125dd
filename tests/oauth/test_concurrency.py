"""Spending is atomic: of many simultaneous requests for one code or refresh token, one wins.

Real concurrency against the running server (STYLE.md: one conditional UPDATE ... RETURNING).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from oauth_support import Codes


async def burst(server: Any, client: Any, n: int, form: dict[str, str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as http:
        # Open every connection first so the requests themselves go out together.
        await asyncio.gather(*(http.get("/healthz") for _ in range(n)))
        start = asyncio.Event()

        async def one() -> httpx.Response:
            await start.wait()
            return await http.post("/v3/token", auth=client.auth, data=form)

        tasks = [asyncio.create_task(one()) for _ in range(n)]
        await asyncio.sleep(0)
        start.set()
        return list(await asyncio.gather(*tasks))


def tally(responses: list[httpx.Response]) -> Counter[int]:
    for r in responses:
        assert r.status_code < 500, r.text
        if r.status_code != 200:
            assert r.json()["error"] == "invalid_grant", r.text
    return Counter(r.status_code for r in responses)


async def test_fifty_concurrent_exchanges_of_one_code_have_one_winner(
    server: Any, codes: Codes
) -> None:
    code = codes()
    responses = await burst(
        server, server.client, 50, {"grant_type": "authorization_code", "code": code}
    )
    counts = tally(responses)
    assert counts[200] == 1, counts
    assert counts[400] == 49


@pytest.fixture(scope="module")
def grace0_codes(grace0_server: Any) -> Iterator[Codes]:
    c = Codes(grace0_server)
    yield c
    c.close()


async def test_fifty_concurrent_refreshes_without_grace_have_one_winner(
    grace0_server: Any, grace0_codes: Codes
) -> None:
    s = grace0_server
    t = grace0_codes.tokens()
    responses = await burst(
        s, s.client, 50, {"grant_type": "refresh_token", "refresh_token": t["refresh_token"]}
    )
    counts = tally(responses)
    assert counts[200] == 1, counts
    assert counts[400] == 49


async def test_twenty_concurrent_refreshes_within_grace_all_get_the_same_pair(
    server: Any, codes: Codes
) -> None:
    t = codes.tokens()
    responses = await burst(
        server,
        server.client,
        20,
        {"grant_type": "refresh_token", "refresh_token": t["refresh_token"]},
    )
    counts = tally(responses)
    assert counts[200] == 20, counts
    pairs = {(r.json()["access_token"], r.json()["refresh_token"]) for r in responses}
    assert len(pairs) == 1, pairs
    access, refresh = pairs.pop()
    assert refresh != t["refresh_token"]
    assert server.api("GET", "/v3/accounts", access).status_code == 200
    assert (
        server.token(server.client, grant_type="refresh_token", refresh_token=refresh).status_code
        == 200
    )
