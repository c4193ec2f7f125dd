"""Group commit at the token endpoint: many simultaneous token requests share SQLite
transactions (one fsync for several), and every token each of them got is really stored.

On PostgreSQL (CONSENTRY_TEST_DATABASE=postgresql) the same requests each run their own
transaction; the assertions are the same.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


async def _burst(server: Any, client: Any, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as http:
        await asyncio.gather(*(http.get("/healthz") for _ in range(n)))
        start = asyncio.Event()

        async def one() -> httpx.Response:
            await start.wait()
            return await http.post(
                "/v3/token", auth=client.auth, data={"grant_type": "client_credentials"}
            )

        tasks = [asyncio.create_task(one()) for _ in range(n)]
        await asyncio.sleep(0)
        start.set()
        return list(await asyncio.gather(*tasks))


def test_fifty_concurrent_client_credentials_requests_all_get_working_tokens(server: Any) -> None:
    client = server.new_client()
    responses = asyncio.run(_burst(server, client, 50))
    assert [r.status_code for r in responses] == [200] * 50, [r.text for r in responses]
    tokens = [r.json()["access_token"] for r in responses]
    assert len(set(tokens)) == 50
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for token in tokens:
            r = http.post("/v3/token/introspect", auth=client.auth, data={"token": token})
            assert r.status_code == 200 and r.json()["active"] is True, r.text
            r = http.get("/v3/accounts", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text


def test_concurrent_refreshes_and_revocations_keep_their_answers(server: Any) -> None:
    """A revocation committed in the same batch as other writes is seen by the next request."""
    client = server.new_client()
    pairs = [server.tokens(client) for _ in range(10)]

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            return list(
                await asyncio.gather(
                    *(
                        http.post(
                            "/v3/token/revoke",
                            auth=client.auth,
                            data={"token": p["refresh_token"], "token_type_hint": "refresh_token"},
                        )
                        for p in pairs[:5]
                    ),
                    *(
                        http.post(
                            "/v3/token",
                            auth=client.auth,
                            data={
                                "grant_type": "refresh_token",
                                "refresh_token": p["refresh_token"],
                            },
                        )
                        for p in pairs[5:]
                    ),
                )
            )

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * 10, [r.text for r in responses]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for p in pairs[:5]:  # revoked: the grant's access token is refused at once
            r = http.get("/v3/accounts", headers={"Authorization": f"Bearer {p['access_token']}"})
            assert r.status_code == 401, r.text
        for r in responses[5:]:
            token = r.json()["access_token"]
            r = http.get("/v3/accounts", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
