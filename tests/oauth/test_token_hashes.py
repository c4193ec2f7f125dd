"""Access and refresh tokens are stored under located hashes (``Keyring.token_hash``); tokens
stored before, under the plain HMAC, keep working everywhere a token is presented.

The legacy rows are made the way an upgrade finds them: a pair is issued, then its rows'
hashes are rewritten to the plain HMAC of the same tokens (what the previous release
stored). Runs on SQLite and on PostgreSQL (``db_url``), in process.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from bench.appdata import Seeded, fresh_app, new_code, seed
from consentry.oauth.issue import ACCESS_KIND, REFRESH_KIND
from consentry.store.models import access_tokens, refresh_tokens


async def _pair(http: httpx.AsyncClient, rt: Any, s: Seeded) -> dict[str, Any]:
    r = await http.post(
        "/v3/token",
        auth=(s.client_id, s.secret),
        data={"grant_type": "authorization_code", "code": await new_code(rt, s)},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _stored(rt: Any, table: Any) -> set[str]:
    async with rt.db.read() as conn:
        return {str(h) for h in (await conn.execute(select(table.c.token_hash))).scalars()}


async def _make_legacy(rt: Any, pair: dict[str, Any]) -> None:
    """Store the pair as the release before located hashes did: the plain HMAC."""
    async with rt.db.write() as conn:
        for table, value, kind in (
            (access_tokens, pair["access_token"], ACCESS_KIND),
            (refresh_tokens, pair["refresh_token"], REFRESH_KIND),
        ):
            stored, legacy = rt.keys.token_hashes(value, kind)
            done = await conn.execute(
                update(table).where(table.c.token_hash == stored).values(token_hash=legacy)
            )
            assert done.rowcount == 1


def _app(db_url: str) -> Any:
    return fresh_app(db_url, {"CONSENTRY_RATE_LIMIT_PER_SECOND": "100000"})


async def _give_its_id_away(rt: Any, column: Any, row_id: int, other: str) -> None:
    """The row ``row_id`` now holds the code or token hashed ``other`` (as when a purged row's
    rowid is given to a new one): ``other``'s own row is renamed out of the way."""
    table = column.table
    async with rt.db.write() as conn:
        moved = {column: other[:60] + "gone"}
        await conn.execute(update(table).where(column == other).values(moved))
        await conn.execute(update(table).where(table.c.id == row_id).values({column: other}))


def test_tokens_are_stored_under_located_hashes_and_legacy_rows_still_work(db_url: str) -> None:
    async def go() -> None:
        app = _app(db_url)
        rt = app.state.rt
        s = await seed(rt)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            new = await _pair(http, rt, s)
            assert new["access_token"] != new["refresh_token"]
            for v in (new["access_token"], new["refresh_token"]):
                assert len(v) == 40 and int(v, 16) >= 0 and v == v.lower()
            # stored under the located hash, never the plain HMAC (or the value itself)
            assert rt.keys.token_hash(new["access_token"], ACCESS_KIND) in await _stored(
                rt, access_tokens
            )
            assert rt.keys.token_hash(new["refresh_token"], REFRESH_KIND) in await _stored(
                rt, refresh_tokens
            )

            old = await _pair(http, rt, s)
            await _make_legacy(rt, old)
            legacy_access = rt.keys.hash(old["access_token"], ACCESS_KIND)
            assert legacy_access in await _stored(rt, access_tokens)

            # the bearer check (twice: the second may be the kept read) and introspection
            for _ in range(2):
                r = await http.get(
                    "/v3/from-fields", headers={"Authorization": f"Bearer {old['access_token']}"}
                )
                assert r.status_code == 200, r.text
            r = await http.get(
                "/v3/accounts", headers={"Authorization": f"Bearer {old['access_token']}"}
            )
            assert r.status_code == 200, r.text
            for token, kind in ((old["access_token"], "Bearer"), (old["refresh_token"], None)):
                r = await http.post(
                    "/v3/token/introspect", auth=(s.client_id, s.secret), data={"token": token}
                )
                body = r.json()
                assert body["active"] is True, body
                if kind:
                    assert body["token_type"] == kind

            # refresh with the legacy refresh token: rotated into located hashes
            r = await http.post(
                "/v3/token",
                auth=(s.client_id, s.secret),
                data={"grant_type": "refresh_token", "refresh_token": old["refresh_token"]},
            )
            assert r.status_code == 200, r.text
            rotated = r.json()
            assert rt.keys.token_hash(rotated["refresh_token"], REFRESH_KIND) in await _stored(
                rt, refresh_tokens
            )
            r = await http.get(
                "/v3/from-fields", headers={"Authorization": f"Bearer {rotated['access_token']}"}
            )
            assert r.status_code == 200, r.text

            # revoking a legacy access token (RFC 7009) ends it
            other = await _pair(http, rt, s)
            await _make_legacy(rt, other)
            r = await http.post(
                "/v3/token/revoke",
                auth=(s.client_id, s.secret),
                data={"token": other["access_token"]},
            )
            assert r.status_code == 200
            r = await http.get(
                "/v3/from-fields", headers={"Authorization": f"Bearer {other['access_token']}"}
            )
            assert r.status_code == 401
            # ... and revoking a legacy refresh token ends its grant
            r = await http.post(
                "/v3/token/revoke",
                auth=(s.client_id, s.secret),
                data={"token": other["refresh_token"], "token_type_hint": "refresh_token"},
            )
            assert r.status_code == 200
            r = await http.post(
                "/v3/token",
                auth=(s.client_id, s.secret),
                data={"grant_type": "refresh_token", "refresh_token": other["refresh_token"]},
            )
            assert r.status_code == 400 and r.json()["error"] == "invalid_grant"

            # a legacy refresh token spent once, presented again after the grace window's
            # successor was used: reuse, and the grant is revoked (RFC 9700 §4.14.2)
            third = await _pair(http, rt, s)
            await _make_legacy(rt, third)
            form = {"grant_type": "refresh_token", "refresh_token": third["refresh_token"]}
            first = await http.post("/v3/token", auth=(s.client_id, s.secret), data=form)
            assert first.status_code == 200
            nxt = {"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]}
            assert (await http.post("/v3/token", auth=(s.client_id, s.secret), data=nxt)).is_success
            again = await http.post("/v3/token", auth=(s.client_id, s.secret), data=form)
            assert again.status_code == 400 and again.json()["error"] == "invalid_grant"

            # values that are not our tokens: unknown, never an error of the server
            for bad in (
                secrets.token_hex(20),
                secrets.token_hex(20).upper(),
                "ab cd" + secrets.token_hex(17)[:35],
                "zz" + secrets.token_hex(19),
                new["access_token"][:39],
            ):
                r = await http.get("/v3/from-fields", headers={"Authorization": f"Bearer {bad}"})
                assert r.status_code == 401, (bad, r.text)
                r = await http.post(
                    "/v3/token",
                    auth=(s.client_id, s.secret),
                    data={"grant_type": "refresh_token", "refresh_token": bad},
                )
                assert r.status_code == 400 and r.json()["error"] == "invalid_grant", bad
            # and the tokens issued before them still work (the cipher state is untouched)
            r = await http.get(
                "/v3/from-fields", headers={"Authorization": f"Bearer {new['access_token']}"}
            )
            assert r.status_code == 200
        await rt.db.dispose()

    asyncio.run(go())


def test_a_spend_takes_only_the_row_its_read_found(db_url: str) -> None:
    """The token endpoint spends the row its read found by id, and by hash: if that id now
    holds another code or token (the row purged and SQLite's rowid given to a new one), the
    spend finds nothing and the other row stays unspent."""
    from consentry.oauth.grants import authorization_code, refresh_token
    from consentry.oauth.issue import CODE_KIND
    from consentry.store import hot
    from consentry.store.models import codes

    async def go() -> None:
        app = _app(db_url)
        rt = app.state.rt
        s = await seed(rt)
        now = int(time.time())
        keys = rt.keys
        pair = (keys.new_token(), keys.new_token())
        minted = (keys.token_hash(pair[0], ACCESS_KIND), now + 60)
        minted += (keys.token_hash(pair[1], REFRESH_KIND), now + 60)

        code_hash = keys.hash(await new_code(rt, s), CODE_KIND)
        _, code = await rt.db.run_read(hot.client_and_code, s.client_id, code_hash)
        other = keys.hash(await new_code(rt, s), CODE_KIND)
        await _give_its_id_away(rt, codes.c.code_hash, int(code.id), other)
        owner = (s.client_pk, s.user)
        job = (authorization_code._redeem, int(code.id), code_hash, *owner, int(code.grant_id))
        outcome = await rt.db.run_single_write(*job, None, now, *minted)
        assert outcome is authorization_code._LOST
        _, still = await rt.db.run_read(hot.client_and_code, s.client_id, other)
        assert still is not None and still.spent_at is None

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            issued = await _pair(http, rt, s)
            second = await _pair(http, rt, s)
        hashes = keys.token_hashes(issued["refresh_token"], REFRESH_KIND)
        _, token = await rt.db.run_read(hot.client_and_refresh_token, s.client_id, hashes)
        theirs = keys.token_hash(second["refresh_token"], REFRESH_KIND)
        await _give_its_id_away(rt, refresh_tokens.c.token_hash, int(token.id), theirs)
        assert token.token_hash == hashes[0]  # the form it is stored under
        job = (refresh_token._rotate, int(token.id), hashes[0], *owner, int(token.grant_id))
        outcome = await rt.db.run_single_write(*job, None, now, *minted, None)
        assert outcome is refresh_token._LOST
        _, still = await rt.db.run_read(hot.client_and_refresh_token, s.client_id, (theirs, theirs))
        assert still is not None and still.spent_at is None
        await rt.db.dispose()

    asyncio.run(go())


def test_a_token_issued_now_is_looked_up_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The located hash is read first and the plain HMAC only when that found nothing: a
    token issued now costs one statement (the bearer check's one round trip on PostgreSQL),
    a token stored by an earlier release or an unknown 40-hex value two, a value that
    cannot be a token (one form only) one."""
    from consentry.store import hot

    reads: list[Any] = []
    real_all = hot.Prepared.all

    def counted(self: Any, conn: Any, params: dict[str, Any]) -> list[Any]:
        reads.append(self)
        return real_all(self, conn, params)

    async def go() -> None:
        app = _app(db_url)
        rt = app.state.rt
        s = await seed(rt)
        keys = rt.keys
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            new = await _pair(http, rt, s)
            old = await _pair(http, rt, s)
        await _make_legacy(rt, old)
        monkeypatch.setattr(hot.Prepared, "all", counted)

        async def count(fn: Any, *args: Any) -> tuple[int, Any]:
            reads.clear()
            got = await rt.db.run_read(fn, *args)
            return len(reads), got

        for pair, statements in ((new, 1), (old, 2)):
            access = keys.token_hashes(pair["access_token"], ACCESS_KIND)
            refresh = keys.token_hashes(pair["refresh_token"], REFRESH_KIND)
            n, at = await count(hot.access_token, access)
            assert (n, at is not None) == (statements, True)
            n, (client, at) = await count(hot.client_and_access_token, s.client_id, access)
            assert (n, client is not None, at is not None) == (statements, True, True)
            n, (client, row) = await count(hot.client_and_refresh_token, s.client_id, refresh)
            assert (n, client is not None, row is not None) == (statements, True, True)
            assert row.token_hash == refresh[statements - 1]  # the form it is stored under
            n, row = await count(hot.refresh_token_by_hash, refresh)
            assert (n, row is not None) == (statements, True)
            n, (client, owners) = await count(
                hot.client_and_token_owners, s.client_id, access, access
            )
            assert (n, owners.access_id is not None) == (statements, True)

        unknown = keys.token_hashes(secrets.token_hex(20), ACCESS_KIND)
        not_a_token = keys.token_hashes("not a token", ACCESS_KIND)
        for hashes, statements in ((unknown, 2), (not_a_token, 1)):
            n, at = await count(hot.access_token, hashes)
            assert (n, at) == (statements, None)
            n, (client, at) = await count(hot.client_and_access_token, s.client_id, hashes)
            assert (n, client is not None, at) == (statements, True, None)
        # an unknown client is not read again, whatever the token
        n, (client, row) = await count(hot.client_and_refresh_token, "nobody", unknown)
        assert (n, client, row) == (1, None, None)
        await rt.db.dispose()

    asyncio.run(go())
