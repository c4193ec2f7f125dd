"""``store.hot.Prepared`` on SQLite and on PostgreSQL: statements run on the DBAPI cursor
give the rows, parameters and errors that ``conn.execute`` gives.

PostgreSQL here is the machine's server (127.0.0.1:5432); without ``CI`` an unreachable
server skips these tests, with ``CI`` set it fails them (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, insert, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from consentry.config import Settings
from consentry.store.db import Database
from consentry.store.hot import Prepared

meta = MetaData()
things = Table(
    "things",
    meta,
    Column("id", Integer, primary_key=True),
    Column("name", String(32), nullable=False, unique=True),
    Column("n", Integer, nullable=False),
)
_INSERT = Prepared(insert(things).values(name=bindparam("p_name"), n=bindparam("p_n")))
# The same parameter twice, and RETURNING: positional order must follow the dialect.
_BUMP = Prepared(
    update(things)
    .where(things.c.name == bindparam("p_name"), things.c.n < bindparam("p_n"))
    .values(n=bindparam("p_n"))
    .returning(things.c.id, things.c.n)
)
_BY_NAME = Prepared(
    select(things.c.id, things.c.name, (things.c.n * 2).label("twice")).where(
        things.c.name == bindparam("p_name")
    )
)


def _run(url: str, test: Callable[[Database], Awaitable[None]], **env: str) -> None:
    """``test(db)`` on a fresh table, in one event loop (the pool's connections live in it);
    ``env``: settings, e.g. ``db_pool_size="1"`` for CONSENTRY_DB_POOL_SIZE."""

    async def go() -> None:
        settings = Settings.from_env(
            {f"CONSENTRY_{k.upper()}": v for k, v in env.items()},
            database_url=url,
            secret_key="k" * 64,
        )
        db = Database(settings)
        try:
            async with db.write() as conn:
                await conn.run_sync(meta.create_all)
            await test(db)
        finally:
            await db.dispose()

    asyncio.run(go())


def _insert(conn: Connection, name: str, n: int) -> None:
    _INSERT.run(conn, {"p_name": name, "p_n": n})


def _bump(conn: Connection, name: str, n: int) -> Any:
    return _BUMP.first(conn, {"p_name": name, "p_n": n})


def _by_name(conn: Connection, name: str) -> list[Any]:
    return _BY_NAME.all(conn, {"p_name": name})


def test_rows_parameters_and_returning(db_url: str) -> None:
    async def go(db: Database) -> None:
        await db.run_write(_insert, "a", 1)
        await db.run_single_write(_insert, "b", 5)
        (row,) = await db.run_read(_by_name, "a")
        assert (row.name, row.twice) == ("a", 2) and row[0] == row.id
        assert await db.run_read(_by_name, "nobody") == []
        bumped = await db.run_write(_bump, "a", 7)
        assert bumped.n == 7 and bumped.id == row.id
        assert await db.run_write(_bump, "a", 3) is None  # 7 < 3 is false: nothing changed
        assert (await db.run_read(_by_name, "b"))[0].twice == 10

    _run(db_url, go)


def test_a_driver_error_arrives_wrapped_and_rolls_back_its_write(db_url: str) -> None:
    def insert_twice(conn: Connection) -> None:
        _insert(conn, "dup", 1)
        _insert(conn, "dup", 2)  # unique name

    async def go(db: Database) -> None:
        with pytest.raises(sa_exc.IntegrityError):
            await db.run_write(insert_twice)
        assert await db.run_read(_by_name, "dup") == []  # the first insert went with it
        await db.run_write(_insert, "dup", 3)  # the connection is still good
        assert [r.twice for r in await db.run_read(_by_name, "dup")] == [6]

    _run(db_url, go)
