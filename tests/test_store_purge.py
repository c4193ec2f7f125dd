"""The purge: expired rows go in batches, and a grant goes with the last of its rows.

Runs against ``Database`` directly, on SQLite or (``CONSENTRY_TEST_DATABASE=postgresql``) on
a fresh PostgreSQL database."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from consentry.config import Settings
from consentry.store.db import Database
from consentry.store.migrate import upgrade
from consentry.store.models import access_tokens, clients, codes, grants, refresh_tokens, users
from consentry.store.tokens import purge_all
from tests.conftest import TEST_DATABASE, drop_pg_database, fresh_pg_database


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    if TEST_DATABASE == "postgresql":
        url = fresh_pg_database()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'purge.db'}"
    s = Settings.from_env({}, database_url=url, secret_key="k" * 64).resolved()
    upgrade(s)
    yield s
    if TEST_DATABASE == "postgresql":
        drop_pg_database(url)


def _h() -> str:
    return secrets.token_hex(32)


async def _scenario(settings: Settings) -> dict[str, object]:
    db = Database(settings)
    now = int(time.time())
    past, future = now - 10, now + 3600
    try:
        async with db.write() as conn:
            user = (await conn.execute(insert(users).values(
                account_id="acc1", email="u@example.com", password_hash="x", name="U",
                created_at=now, time_zone="UTC").returning(users.c.id))).scalar_one()
            client = (await conn.execute(insert(clients).values(
                client_id="c" * 20, secret_hash=_h(), owner_id=user, name="app",
                redirect_uris='["https://app.example/cb"]', created_at=now,
            ).returning(clients.c.id))).scalar_one()

            async def grant(created_at: int = now) -> int:
                return int((await conn.execute(insert(grants).values(
                    user_id=user, client_pk=client, scope=None, created_at=created_at,
                ).returning(grants.c.id))).scalar_one())

            async def code(g: int, expires: int) -> None:
                await conn.execute(insert(codes).values(
                    code_hash=_h(), grant_id=g, client_pk=client, user_id=user,
                    redirect_uri="https://app.example/cb", redirect_uri_sent=False,
                    expires_at=expires))

            async def token(table: object, g: int | None, expires: int) -> None:
                await conn.execute(insert(table).values(  # type: ignore[arg-type]
                    token_hash=_h(), client_pk=client, user_id=user, grant_id=g,
                    expires_at=expires))

            # all rows expired, grant brand new: goes (nothing can be minted into it again)
            gone_new = await grant()
            await code(gone_new, past)
            # all rows expired, old grant: goes
            gone_old = await grant(now - 7200)
            await code(gone_old, past)
            await token(access_tokens, gone_old, past)
            await token(refresh_tokens, gone_old, past)
            # code expired but its refresh token lives: stays
            kept_refresh = await grant()
            await code(kept_refresh, past)
            await token(refresh_tokens, kept_refresh, future)
            # live access token only: stays
            kept_access = await grant()
            await token(access_tokens, kept_access, future)
            await token(access_tokens, kept_access, past)
            # client_credentials tokens have no grant
            await token(access_tokens, None, past)
            await token(access_tokens, None, future)
            # many expired rows over many grants, more than one batch
            many = [await grant() for _ in range(25)]
            for g in many:
                await token(access_tokens, g, past)
                await token(refresh_tokens, g, past)

        purged = await purge_all(db, batch=7)

        async with db.read() as conn:
            left = {int(r[0]) for r in await conn.execute(select(grants.c.id))}
            counts = {
                t.name: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                for t in (codes, access_tokens, refresh_tokens)
            }
    finally:
        await db.dispose()
    return {
        "purged": purged,
        "left": left,
        "counts": counts,
        "kept": {kept_refresh, kept_access},
    }


def test_expired_rows_and_their_grants_go_live_ones_stay(settings: Settings) -> None:
    out = asyncio.run(_scenario(settings))
    assert out["left"] == out["kept"]
    assert out["counts"] == {"codes": 0, "access_tokens": 2, "refresh_tokens": 1}
    # expired: 3 codes, 1 + 1 + 1 + 25 access and 1 + 25 refresh tokens; 2 + 25 grants
    assert out["purged"] == 3 + (1 + 1 + 1 + 25) + (1 + 25) + (2 + 25)
