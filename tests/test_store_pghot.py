"""The PostgreSQL hot path (``store/pghot.py``): hot functions on raw asyncpg connections.

What it must keep from SQLAlchemy's pool: the same results, errors as SQLAlchemy raises
them, a bounded pool with a timeout, lost connections dropped and replaced, and everything
it cannot run (a statement built per call) run the ordinary way instead, never half of it.

PostgreSQL here is the machine's server (127.0.0.1:5432); without ``CI`` an unreachable
server skips these tests, with ``CI`` set it fails them (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.util import await_only

from consentry.app import database_unavailable
from consentry.store.db import Database
from consentry.store.pghot import HotConnection, HotPool
from tests.conftest import _pg_admin, drop_pg_database, fresh_pg_database
from tests.test_store_prepared import _BY_NAME, _by_name, _insert, _run, things


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = fresh_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


def _hot(db: Database) -> HotPool:
    assert db._hot is not None
    return db._hot


def _idle(db: Database) -> int:
    return len(_hot(db)._idle)


def _backend_pid(conn: Any) -> int:
    assert isinstance(conn, HotConnection)
    return int(conn.raw.get_server_pid())


def test_reads_and_single_writes_take_no_sqlalchemy_connection(pg_url: str) -> None:
    """The hot functions run on the hot pool's connection: SQLAlchemy's pool opens none."""

    async def go(db: Database) -> None:
        opened: list[int] = []
        event.listen(db.engine.sync_engine.pool, "checkout", lambda *a: opened.append(1))
        await db.run_single_write(_insert, "a", 1)
        (row,) = await db.run_read(_by_name, "a")
        assert (row.name, row.twice) == ("a", 2)
        assert await db.run_read(_by_name, "nobody") == []
        assert opened == []
        assert _idle(db) == 1  # one connection, used in turn and kept

    _run(pg_url, go)


def test_a_function_the_hot_path_cannot_run_is_run_the_ordinary_way(pg_url: str) -> None:
    def mixed(conn: Connection) -> Any:
        first = _BY_NAME.all(conn, {"p_name": "a"})
        # A statement built per call: the hot path gives up before running it.
        n = conn.execute(select(things.c.n).where(things.c.name == "a")).scalar_one()
        return first[0].twice, n

    async def go(db: Database) -> None:
        await db.run_single_write(_insert, "a", 4)
        assert await db.run_read(mixed) == (8, 4)
        assert _idle(db) == 1  # its slot and connection came back

    _run(pg_url, go)


def test_a_single_write_that_mixes_in_other_statements_after_writing_is_refused(
    pg_url: str,
) -> None:
    """Running it again the ordinary way would write twice: a programming error, loudly."""

    def bad(conn: Connection) -> None:
        _insert(conn, "once", 1)
        conn.execute(text("SELECT 1"))

    def fine(conn: Connection) -> int:
        conn.execute(text("SELECT 1"))  # nothing written yet: run again the ordinary way
        _insert(conn, "twice?", 1)
        return 1

    async def go(db: Database) -> None:
        with pytest.raises(RuntimeError, match="single write"):
            await db.run_single_write(bad)
        assert await db.run_single_write(fine) == 1
        assert len(await db.run_read(_by_name, "twice?")) == 1  # once

    _run(pg_url, go)


def test_a_constraint_error_arrives_as_sqlalchemy_raises_it_and_keeps_the_connection(
    pg_url: str,
) -> None:
    async def go(db: Database) -> None:
        await db.run_single_write(_insert, "dup", 1)
        with pytest.raises(sa_exc.IntegrityError):
            await db.run_single_write(_insert, "dup", 2)
        assert _idle(db) == 1
        assert [r.twice for r in await db.run_read(_by_name, "dup")] == [2]

    _run(pg_url, go)


def test_a_lost_connection_is_a_503_then_replaced(pg_url: str) -> None:
    """The server ends a pooled backend (a restart, an administrator) in the middle of a
    statement: the call fails the way the app answers with 503, the connection is not used
    again, and the next call connects anew."""

    def sleeps(conn: Connection) -> None:
        assert isinstance(conn, HotConnection)
        conn.fetch("SELECT pg_sleep(5)", [])

    async def go(db: Database) -> None:
        pid = await db.run_read(_backend_pid)
        call = asyncio.create_task(db.run_read(sleeps))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(_pg_admin, f"SELECT pg_terminate_backend({pid})")
        with pytest.raises(sa_exc.OperationalError) as caught:
            await call
        assert database_unavailable(caught.value)
        assert _idle(db) == 0
        assert await db.run_read(_backend_pid) != pid
        assert await db.run_read(_by_name, "a") == []

    _run(pg_url, go)


def test_the_pool_is_bounded_and_a_wait_for_it_times_out(pg_url: str) -> None:
    def slow(conn: Connection, seconds: float) -> int:
        await_only(asyncio.sleep(seconds))  # holds its connection meanwhile
        return _backend_pid(conn)

    async def go(db: Database) -> None:
        # Pool size 1 and overflow 1: two calls at once, a third waits and times out.
        holders = [asyncio.create_task(db.run_read(slow, 3.0)) for _ in range(2)]
        await asyncio.sleep(0.3)
        with pytest.raises(sa_exc.TimeoutError) as caught:
            await db.run_read(_by_name, "a")
        assert database_unavailable(caught.value)
        first, second = await asyncio.gather(*holders)
        assert first != second  # two connections
        assert _idle(db) == 1  # the overflow one was closed when returned
        assert await db.run_read(_by_name, "a") == []

    _run(pg_url, go, db_pool_size="1", db_max_overflow="1", db_pool_timeout="1")


def test_a_call_cancelled_mid_statement_does_not_leave_its_connection_in_the_pool(
    pg_url: str,
) -> None:
    def sleeps(conn: Connection) -> None:
        assert isinstance(conn, HotConnection)
        conn.fetch("SELECT pg_sleep(5)", [])

    async def go(db: Database) -> None:
        await db.run_read(_by_name, "a")
        task = asyncio.create_task(db.run_read(sleeps))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _idle(db) == 0  # closed, not handed to the next request mid-query
        assert await db.run_read(_by_name, "a") == []

    _run(pg_url, go)
