"""On PostgreSQL, GET /v3/from-fields without parameters reads the bearer token and the first
page in ONE statement (``resources._token_and_first_page``, the guard's ``Joined``); with any
parameter, and always on SQLite, it reads them one statement each. Both must give the same
page, totals and errors, for no, one, several and more than a page of from-fields, with
another account's from-fields in the same table (on SQLite the test compares the two-statement
way with itself, and the joined statement directly).

PostgreSQL here is the machine's server (127.0.0.1:5432); without ``CI`` an unreachable
server skips those cases, with ``CI`` set it fails them (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx

from bench.appdata import Seeded, fresh_app, new_code, seed
from consentry.api.guard import token_and_prefetch
from consentry.api.resources import _FIRST_PAGE_JOINED, _page_answer, _read_first_page
from consentry.oauth.issue import ACCESS_KIND
from consentry.store.models import from_fields
from consentry.store.users import create_user


async def _add_from_fields(rt: Any, user_id: int, n: int, tag: str) -> None:
    now = int(time.time())
    async with rt.db.write() as conn:
        for i in range(n):
            await conn.execute(
                from_fields.insert().values(
                    public_id=secrets.token_urlsafe(6),
                    user_id=user_id,
                    email=f"{tag}{i}@example.com",
                    name=f"{tag} {i}",
                    is_active=True,
                    is_default=False,
                    created_at=now - 1000 + (i % 7),  # ties on created_at: ordered by id
                )
            )


async def _token(http: httpx.AsyncClient, rt: Any, s: Seeded) -> str:
    r = await http.post(
        "/v3/token",
        auth=(s.client_id, s.secret),
        data={"grant_type": "authorization_code", "code": await new_code(rt, s)},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _page(r: httpx.Response) -> tuple[int, Any, tuple[str | None, ...]]:
    headers = tuple(r.headers.get(h) for h in ("TotalCount", "TotalPages", "CurrentPage"))
    return r.status_code, r.json(), headers


def test_one_statement_and_two_give_the_same_answers(db_url: str) -> None:
    async def go() -> None:
        app = fresh_app(db_url, {"CONSENTRY_RATE_LIMIT_PER_SECOND": "100000"})
        rt = app.state.rt
        s = await seed(rt)
        async with rt.db.write() as conn:
            other = await create_user(conn, email="o@example.com", password_hash="x", name="O")
        await _add_from_fields(rt, other, 4, "other")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            token = await _token(http, rt, s)
            auth = {"Authorization": f"Bearer {token}"}
            # An account starts with its own from-field (its email); then 1, 3 and 105 more
            # (past one page of 100).
            start = await http.get("/v3/from-fields?perPage=100", headers=auth)
            have = int(start.headers["TotalCount"])
            for add in (0, 1, 2, 102):
                await _add_from_fields(rt, s.user, add, f"mine{have}-")
                have += add
                joined = await http.get("/v3/from-fields", headers=auth)
                ordinary = await http.get("/v3/from-fields?perPage=100", headers=auth)
                assert _page(joined) == _page(ordinary)
                status, items, (total, pages, current) = _page(joined)
                assert status == 200 and total == str(have) and current == "1"
                assert len(items) == min(have, 100)
                assert not any(i["email"].startswith("other") for i in items)
                assert pages == (str(-(-have // 100)) if have else "0")
                # The joined statement itself, on either database: the guard's result and
                # the page built from it equal the two-statement read's.
                hashes = rt.keys.token_hashes(token, ACCESS_KIND)
                args = (hashes, token, None, None, int(time.time()))
                two = await rt.db.run_read(
                    token_and_prefetch, *args, "from-fields.read", _read_first_page
                )
                one = await rt.db.run_read(
                    token_and_prefetch,
                    *args,
                    "from-fields.read",
                    _read_first_page,
                    _FIRST_PAGE_JOINED,
                )
                assert one[:2] == two[:2] and one[2][0] and two[2][0]
                assert _page_answer(rt, one[2][1]) == _page_answer(rt, two[2][1])
            # Refused the same way: an unknown token, then a revoked one.
            bad = {"Authorization": "Bearer " + "0" * 40}
            a, b = (
                await http.get("/v3/from-fields", headers=bad),
                await http.get("/v3/from-fields?perPage=100", headers=bad),
            )
            assert (
                (a.status_code, a.json()["code"])
                == (b.status_code, b.json()["code"])
                == (
                    401,
                    1014,
                )
            )
            r = await http.post(
                "/v3/token/revoke", auth=(s.client_id, s.secret), data={"token": token}
            )
            assert r.status_code == 200
            a, b = (
                await http.get("/v3/from-fields", headers=auth),
                await http.get("/v3/from-fields?perPage=100", headers=auth),
            )
            assert a.status_code == b.status_code == 401
        await rt.db.dispose()

    asyncio.run(go())
