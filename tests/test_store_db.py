"""``Database.run_read`` / ``run_write`` on SQLite: the group-commit writer thread.

Unit tests against ``Database`` directly (no server): a batch of jobs is one transaction with
a savepoint per job, so a job that fails rolls back only itself and gets its own exception,
and every other job in the batch is committed and answered.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from consentry.config import Settings
from consentry.store.db import Database


class Boom(Exception):
    pass


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'db.sqlite3'}"


def _settings(url: str) -> Settings:
    return Settings.from_env({}, database_url=url, secret_key="k" * 64)


def _create(conn: Connection) -> None:
    conn.exec_driver_sql("CREATE TABLE t (x INTEGER PRIMARY KEY, note TEXT)")


def _insert(conn: Connection, x: int, fail: bool) -> int:
    conn.exec_driver_sql("INSERT INTO t (x, note) VALUES (?, 'row')", (x,))
    if fail:
        raise Boom(x)
    return x


def _all(conn: Connection) -> list[int]:
    return [r[0] for r in conn.exec_driver_sql("SELECT x FROM t ORDER BY x")]


def _hold(entered: threading.Event, gate: threading.Event) -> Any:
    def job(conn: Connection) -> bool:
        entered.set()
        return gate.wait(30)

    return job


async def _held(db: Database, gate: threading.Event) -> Any:
    """A write job that keeps the writer thread busy until ``gate`` is set."""
    entered = threading.Event()
    fut = asyncio.ensure_future(db.run_write(_hold(entered, gate)))
    while not entered.is_set():
        await asyncio.sleep(0)
    return fut


async def _until_queued(db: Database, n: int) -> None:
    while db.write_stats()[2] < n:
        await asyncio.sleep(0)


def test_a_failing_job_in_a_batch_rolls_back_only_itself(db_url: str) -> None:
    async def main() -> None:
        db = Database(_settings(db_url))
        try:
            await db.run_write(_create)
            gate = threading.Event()
            # Hold the writer thread in a first job so that the next jobs queue up and are
            # written together, as one batch (one BEGIN IMMEDIATE ... COMMIT).
            held = await _held(db, gate)
            batches_before = db.write_stats()[0]
            jobs = [
                asyncio.ensure_future(db.run_write(_insert, x, x % 3 == 0)) for x in range(1, 13)
            ]
            await _until_queued(db, len(jobs))
            gate.set()
            await held
            results = await asyncio.gather(*jobs, return_exceptions=True)
            # the gate's batch, then the 12 jobs in one batch
            assert db.write_stats()[0] == batches_before + 2
            for x, result in zip(range(1, 13), results, strict=True):
                if x % 3 == 0:
                    assert isinstance(result, Boom) and result.args == (x,)
                else:
                    assert result == x
            assert await db.run_read(_all) == [x for x in range(1, 13) if x % 3]
        finally:
            await db.dispose()

    asyncio.run(main())


def test_a_lone_failing_job_rolls_back_and_the_writer_goes_on(db_url: str) -> None:
    async def main() -> None:
        db = Database(_settings(db_url))
        try:
            await db.run_write(_create)
            with pytest.raises(Boom):
                await db.run_write(_insert, 1, True)
            assert await db.run_write(_insert, 2, False) == 2
            assert await db.run_read(_all) == [2]
        finally:
            await db.dispose()

    asyncio.run(main())


def test_many_concurrent_writes_are_all_committed_in_fewer_transactions(db_url: str) -> None:
    async def main() -> None:
        db = Database(_settings(db_url))
        try:
            await db.run_write(_create)
            before = db.write_stats()[0]
            got = await asyncio.gather(*(db.run_write(_insert, x, False) for x in range(200)))
            assert got == list(range(200))
            batches = db.write_stats()[0] - before
            assert 1 <= batches <= 200
            assert await db.run_read(_all) == list(range(200))
        finally:
            await db.dispose()
        # Durable: a fresh process-level view of the file has every row.
        again = Database(_settings(db_url))
        try:
            assert await again.run_read(_all) == list(range(200))
        finally:
            await again.dispose()

    asyncio.run(main())


def test_a_unique_violation_in_one_job_leaves_the_batch_usable(db_url: str) -> None:
    async def main() -> None:
        db = Database(_settings(db_url))
        try:
            await db.run_write(_create)
            gate = threading.Event()
            held = await _held(db, gate)
            jobs: list[Any] = [
                asyncio.ensure_future(db.run_write(_insert, 1, False)),
                asyncio.ensure_future(db.run_write(_insert, 1, False)),  # duplicate key
                asyncio.ensure_future(db.run_write(_insert, 2, False)),
            ]
            await _until_queued(db, 3)
            gate.set()
            await held
            first, dup, third = await asyncio.gather(*jobs, return_exceptions=True)
            assert first == 1 and third == 2
            assert isinstance(dup, Exception) and "UNIQUE" in str(dup)
            assert await db.run_read(_all) == [1, 2]
        finally:
            await db.dispose()

    asyncio.run(main())


def test_a_batch_without_failures_runs_without_savepoints(db_url: str) -> None:
    """The optimistic path: savepoints only when a job of the batch raised (then the batch
    runs again, each job in its own savepoint, as the failing-job test above checks)."""
    from sqlalchemy import event

    seen: list[str] = []

    async def main() -> None:
        db = Database(_settings(db_url))
        assert db._sync_engine is not None

        @event.listens_for(db._sync_engine, "connect")
        def _trace(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.set_trace_callback(seen.append)

        try:
            await db.run_write(_create)
            gate = threading.Event()
            held = await _held(db, gate)
            jobs = [asyncio.ensure_future(db.run_write(_insert, x, False)) for x in range(10)]
            await _until_queued(db, len(jobs))
            seen.clear()
            gate.set()
            await held
            assert await asyncio.gather(*jobs) == list(range(10))
            assert not [s for s in seen if s.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK"))]
            assert sum(1 for s in seen if s.startswith("INSERT")) == 10
            assert sum(1 for s in seen if s == "COMMIT") == 2  # the gate's batch, then ours
        finally:
            await db.dispose()

    asyncio.run(main())
