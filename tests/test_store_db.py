"""``Database.run_read`` / ``run_write`` on SQLite: the group-commit writer thread.

Unit tests against ``Database`` directly (no server): a batch of jobs is one transaction with
a savepoint per job, so a job that fails rolls back only itself and gets its own exception,
and every other job in the batch is committed and answered.
"""

from __future__ import annotations

import asyncio
import ctypes
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from consentry.config import Settings
from consentry.store import db as db_module
from consentry.store import walindex
from consentry.store.db import Database
from consentry.store.walindex import HEADER_SIZE, WalIndexHeader


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


# --- filling a batch under concurrency (``_Writer._fill_target``) ----------------------------


@pytest.fixture
def busy_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fill batches whatever the event loop's busy share (these tests' loops mostly sleep)."""
    monkeypatch.setattr(db_module, "FILL_BUSY", 0.0)


def _writer(db: Database) -> Any:
    assert db._writer is not None
    return db._writer


def _expect_load(db: Database, in_flight: int) -> None:
    """Make the writer's last window have seen ``in_flight`` jobs, ending just now."""
    w = _writer(db)
    w._peak = in_flight
    w._window_end = time.monotonic()


def test_the_fill_target_follows_the_last_window_of_load(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "FILL_BUSY", 0.0)  # the next test covers the busy share

    async def main() -> None:
        db = Database(_settings(db_url))
        try:
            await db.run_write(_create)
            w = _writer(db)
            now = time.monotonic()
            w._window_end = now
            w._peak = 1
            assert w._fill_target(now) == 1  # a lone client: committed at once
            w._note_load(32)
            assert w._fill_target(now) == 1  # still the window that saw load 1
            # Each next call at the end of the window before it: the window rolls over.
            assert w._fill_target(w._window_end) == 24  # it saw 32: three quarters
            w._note_load(db_module.FILL_FROM - 1)
            assert w._fill_target(w._window_end) == 1  # below FILL_FROM
            w._note_load(10_000)
            assert w._fill_target(w._window_end) == db_module.MAX_BATCH
            # No batch for a whole window: the load is over, whatever it was.
            w._note_load(32)
            assert w._fill_target(w._window_end + 2 * db_module.LOAD_WINDOW) == 1
        finally:
            await db.dispose()

    asyncio.run(main())


def _spin_cpu(seconds: float) -> None:
    """Busy for ``seconds`` of this thread's CPU time (however long that takes on a machine
    that other processes share)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_the_fill_waits_only_while_the_submitting_thread_is_busy(db_url: str) -> None:
    """Independent clients at a moderate rate leave the event loop mostly idle: then a batch
    is committed at once, whatever the load in flight (waiting would only add latency).

    The thread's CPU clock is real; the wall times handed to the writer are the window's
    length, what they would be on an idle machine (a CI machine that another job shares
    can take two windows of wall time to give one of CPU time, and this test is not about
    that)."""

    async def main() -> None:
        db = Database(_settings(db_url))
        try:
            await db.run_write(_create)  # this thread is the submitting one
            w = _writer(db)
            window = db_module.LOAD_WINDOW
            t = time.monotonic()
            w._loop_busy(t)
            time.sleep(window)
            assert w._loop_busy(t + window) < 0.2
            _spin_cpu(window)
            assert w._loop_busy(t + 2 * window) > db_module.FILL_BUSY
            # 32 in flight, but the loop slept through the window: no wait.
            w._note_load(32)
            w._window_end = t + 3 * window  # ends as the sleep does: not stale
            time.sleep(window)
            assert w._fill_target(t + 3 * window) == 1
            # 32 in flight and the loop busy: three quarters.
            w._note_load(32)
            _spin_cpu(window)
            assert w._fill_target(t + 4 * window) == 24
        finally:
            await db.dispose()

    asyncio.run(main())


@pytest.mark.usefixtures("busy_loop")
def test_under_load_jobs_arriving_one_by_one_fill_one_batch(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight writes 5 ms apart after a load of 11 in flight: one transaction, not eight
    (without the fill the first job is committed alone while the others are on their way)."""
    monkeypatch.setattr(db_module, "FILL_WAIT", 30.0)

    async def main() -> None:
        db = Database(_settings(db_url))
        try:
            await db.run_write(_create)
            w = _writer(db)
            before = db.write_stats()[0]
            _expect_load(db, 11)  # the fill target: 8
            jobs = []
            for x in range(8):
                jobs.append(asyncio.ensure_future(db.run_write(_insert, x, False)))
                await asyncio.sleep(0.005)
            assert await asyncio.gather(*jobs) == list(range(8))
            assert db.write_stats()[0] - before == 1
            assert (w.fill_waits, w.fill_timeouts) == (1, 0)
            assert await db.run_read(_all) == list(range(8))
        finally:
            await db.dispose()

    asyncio.run(main())


@pytest.mark.usefixtures("busy_loop")
def test_a_batch_that_does_not_fill_is_committed_after_the_fill_wait(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "FILL_WAIT", 0.05)

    async def main() -> None:
        db = Database(_settings(db_url))
        try:
            await db.run_write(_create)
            w = _writer(db)
            _expect_load(db, 11)
            assert await db.run_write(_insert, 1, False) == 1
            assert (w.fill_waits, w.fill_timeouts) == (1, 1)
            assert await db.run_read(_all) == [1]
        finally:
            await db.dispose()

    asyncio.run(main())


@pytest.mark.usefixtures("busy_loop")
def test_stopping_ends_a_wait_to_fill_at_once(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer waiting for its batch to fill commits what it has and stops when asked
    (with a fill wait longer than the stop's 30 s join, it would otherwise still be alive)."""
    monkeypatch.setattr(db_module, "FILL_WAIT", 120.0)

    async def main() -> None:
        db = Database(_settings(db_url))
        await db.run_write(_create)
        w = _writer(db)
        _expect_load(db, 11)
        job = asyncio.ensure_future(db.run_write(_insert, 7, False))
        for _ in range(10_000):
            if w.fill_waits:
                break
            await asyncio.sleep(0.001)
        assert w.fill_waits == 1
        await db.dispose()
        assert await job == 7
        assert not w._thread.is_alive()
        again = Database(_settings(db_url))
        try:
            assert await again.run_read(_all) == [7]
        finally:
            await again.dispose()

    asyncio.run(main())


def test_read_unchanged_keeps_a_read_until_any_connection_commits(
    db_url: str, tmp_path: Path
) -> None:
    db = Database(_settings(db_url))
    calls: list[str] = []

    def counted(conn: Connection, label: str) -> list[int] | None:
        calls.append(label)
        rows = _all(conn)
        return rows if label != "none" else None

    async def main() -> None:
        await db.run_write(_create)
        await db.run_write(_insert, 1, False)
        assert db.read_unchanged("a", counted, "a") == [1]
        assert db.read_unchanged("a", counted, "a") == [1]  # kept
        assert db.read_unchanged("b", counted, "b") == [1]  # another key: read
        assert db.read_unchanged("none", counted, "none") is None
        assert db.read_unchanged("none", counted, "none") is None  # None is not kept
        assert calls == ["a", "b", "none", "none"]
        await db.run_write(_insert, 2, False)  # this process's writer thread
        assert db.read_unchanged("a", counted, "a") == [1, 2]
        # A commit in another process.
        code = (
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute('INSERT INTO t (x) VALUES (3)'); c.commit()"
        )
        subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "db.sqlite3")], check=True, timeout=60
        )
        assert db.read_unchanged("a", counted, "a") == [1, 2, 3]
        assert db.read_unchanged("a", counted, "a") == [1, 2, 3]
        assert calls == ["a", "b", "none", "none", "a", "a"]
        # A failed write commits nothing, and the read stays kept.
        with pytest.raises(Boom):
            await db.run_write(_insert, 4, True)
        assert db.read_unchanged("a", counted, "a") == [1, 2, 3]
        assert len(calls) == 6
        # A new reader connection starts its own data_version: nothing kept survives it.
        assert db._reader is not None
        db._reader.close()
        before = len(calls)
        assert db.read_unchanged("a", counted, "a") == [1, 2, 3]
        assert len(calls) == before + 1
        await db.dispose()

    asyncio.run(main())


def test_read_unchanged_keeps_at_most_its_bound(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "UNCHANGED_MAX", 2)
    db = Database(_settings(db_url))
    calls: list[int] = []

    def read(conn: Connection, n: int) -> int:
        calls.append(n)
        return n

    async def main() -> None:
        await db.run_write(_create)
        for n in (1, 2, 1, 2):
            assert db.read_unchanged(n, read, n) == n
        assert calls == [1, 2]
        assert db.read_unchanged(3, read, 3) == 3  # full: everything dropped, 3 kept
        assert db.read_unchanged(1, read, 1) == 1
        assert calls == [1, 2, 3, 1]
        assert len(db._unchanged) <= 2
        await db.dispose()

    asyncio.run(main())


def _insert_blob(conn: Connection, x: int) -> int:
    conn.exec_driver_sql("INSERT INTO t (x, note) VALUES (?, ?)", (x, "n" * 2000))
    return x


def test_the_writer_checkpoints_the_wal_itself(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Committed pages reach the database file through the writer's own checkpoints (SQLite's
    automatic one only starts at WRITER_AUTOCHECKPOINT pages, far above this test's)."""
    monkeypatch.setattr(db_module, "CHECKPOINT_EVERY", 0.0)
    monkeypatch.setattr(db_module, "CHECKPOINT_JOBS", 20)
    db = Database(_settings(db_url))
    path = tmp_path / "db.sqlite3"

    async def main() -> None:
        await db.run_write(_create)
        before = path.stat().st_size
        for x in range(200):  # ~400 KB of rows, one commit each
            await db.run_write(_insert_blob, x)
        writer = _writer(db)
        assert writer.checkpoints >= 5
        assert path.stat().st_size > before + 300_000  # the pages are in the file itself
        assert await db.run_read(_all) == list(range(200))
        await db.dispose()

    asyncio.run(main())


def test_a_batch_is_answered_before_the_writer_checkpoints(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint runs after the batch's answers were handed to the event loop: a write
    completes while the checkpoint that follows it is still running."""
    monkeypatch.setattr(db_module, "CHECKPOINT_EVERY", 0.0)
    monkeypatch.setattr(db_module, "CHECKPOINT_JOBS", 1)
    in_checkpoint = threading.Event()
    release = threading.Event()
    real = db_module._Writer._checkpoint

    def slow_checkpoint(self: Any, raw: Any) -> None:
        in_checkpoint.set()
        release.wait(30)
        real(self, raw)

    monkeypatch.setattr(db_module._Writer, "_checkpoint", slow_checkpoint)
    db = Database(_settings(db_url))

    async def main() -> None:
        try:
            await asyncio.wait_for(db.run_write(_create), 5)  # answered, checkpoint held
            assert in_checkpoint.is_set() or await asyncio.to_thread(in_checkpoint.wait, 5)
        finally:
            release.set()
        assert await asyncio.wait_for(db.run_write(_insert, 1, False), 5) == 1
        assert _writer(db).checkpoints >= 1
        await db.dispose()

    asyncio.run(main())


def test_a_begin_on_a_busy_database_raises_sqlalchemys_operational_error(tmp_path: Path) -> None:
    """BEGIN runs straight on pysqlite (store/db.py: _configure_sqlite); when another
    connection holds the write lock past the busy timeout, the error still arrives as
    SQLAlchemy's OperationalError (the one the app answers with 503), and the connection
    can begin again once the lock is gone."""
    import sqlite3

    from sqlalchemy import create_engine, exc, text

    path = tmp_path / "busy.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    db_module._configure_sqlite(engine)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    try:
        with engine.connect() as conn:
            conn.connection.dbapi_connection.execute("PRAGMA busy_timeout=20")  # type: ignore[union-attr]
            writer = conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            with pytest.raises(exc.OperationalError, match="locked"):
                writer.begin()
            holder.execute("COMMIT")
            with writer.begin():
                writer.execute(text("INSERT INTO t VALUES (1)"))
            assert holder.execute("SELECT count(*) FROM t").fetchone() == (1,)
    finally:
        holder.close()
        engine.dispose()


def _traced(db: Database) -> list[str]:
    """The statements the reader connection runs from now on."""
    assert db._reader is not None
    raw = db._reader.connection.dbapi_connection
    seen: list[str] = []
    raw.set_trace_callback(seen.append)  # type: ignore[union-attr]
    return seen


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the header is mapped on Linux")
def test_a_kept_read_is_checked_against_the_mapped_wal_index_header(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the header's two copies are as they were, a kept read runs no statement at all
    (not even the PRAGMA); a commit by this process's writer or by another process moves
    the header, and the next call reads again."""
    monkeypatch.setattr(db_module, "HEADER_VERIFY_EVERY", 600.0)
    db = Database(_settings(db_url))

    async def main() -> None:
        await db.run_write(_create)
        await db.run_write(_insert, 1, False)
        assert db.read_unchanged("a", lambda c: _all(c)) == [1]
        assert db._wal is not None and db._wal[1] is not None  # mapped by the first call
        assert db.read_unchanged("a", lambda c: _all(c)) == [1]  # the first header kept
        seen = _traced(db)
        for _ in range(3):
            assert db.read_unchanged("a", lambda c: _all(c)) == [1]
        assert seen == []  # no PRAGMA, no read
        await db.run_write(_insert, 2, False)
        assert db.read_unchanged("a", lambda c: _all(c)) == [1, 2]
        assert any("data_version" in s for s in seen) and any("SELECT x" in s for s in seen)
        seen.clear()
        assert db.read_unchanged("a", lambda c: _all(c)) == [1, 2]
        assert seen == []
        code = (
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute('INSERT INTO t (x) VALUES (3)'); c.commit()"
        )
        subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "db.sqlite3")], check=True, timeout=60
        )
        assert db.read_unchanged("a", lambda c: _all(c)) == [1, 2, 3]
        await db.dispose()

    asyncio.run(main())


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the header is mapped on Linux")
def test_a_header_whose_copies_differ_sends_the_read_to_the_pragma(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit half-way through writing the header (second copy new, first still old) is
    never taken for an unchanged database."""
    monkeypatch.setattr(db_module, "HEADER_VERIFY_EVERY", 600.0)
    db = Database(_settings(db_url))

    async def main() -> None:
        await db.run_write(_create)
        for _ in range(2):  # mapped by the first, kept by the second
            assert db.read_unchanged("a", lambda c: _all(c)) == []
        assert db._wal is not None and db._wal[1] is not None
        assert db._unchanged_header is not None
        raw, header = db._wal
        both = bytearray(header.read())
        both[HEADER_SIZE + 8] ^= 1  # the second copy's iChange, as a writer writes it first
        db._wal = (raw, WalIndexHeader(ctypes.create_string_buffer(bytes(both), len(both))))
        seen = _traced(db)
        for _ in range(2):
            assert db.read_unchanged("a", lambda c: _all(c)) == []
            assert any("data_version" in s for s in seen)
            assert db._unchanged_header is None  # a torn read is never what is kept
            seen.clear()
        header.close()
        await db.dispose()

    asyncio.run(main())


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the header is mapped on Linux")
def test_a_header_that_misses_a_commit_is_dropped_at_the_next_verification(
    db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Were the mapped bytes ever not SQLite's (here: a frozen copy of them), the PRAGMA made
    every HEADER_VERIFY_EVERY finds the commit they missed: the header is dropped for good,
    the read is made again, and it is logged."""
    monkeypatch.setattr(db_module, "HEADER_VERIFY_EVERY", 0.0)
    db = Database(_settings(db_url))

    async def main() -> None:
        await db.run_write(_create)
        assert db.read_unchanged("a", lambda c: _all(c)) == []
        assert db._wal is not None and db._wal[1] is not None
        raw, header = db._wal
        frozen = WalIndexHeader(ctypes.create_string_buffer(header.read(), 2 * HEADER_SIZE))
        db._wal = (raw, frozen)
        assert db.read_unchanged("a", lambda c: _all(c)) == []  # kept under the frozen bytes
        await db.run_write(_insert, 1, False)
        with caplog.at_level("ERROR", logger="consentry.db"):
            assert db.read_unchanged("a", lambda c: _all(c)) == [1]
        assert "missed a commit" in caplog.text
        assert db._wal == (raw, None)
        await db.run_write(_insert, 2, False)
        assert db.read_unchanged("a", lambda c: _all(c)) == [1, 2]  # the PRAGMA's way
        header.close()
        await db.dispose()

    asyncio.run(main())


def test_the_header_is_not_mapped_where_sqlite_does_not_use_the_file(tmp_path: Path) -> None:
    """Exclusive locking keeps the WAL index in heap memory, and a file no descriptor of this
    process holds (a copy) is not SQLite's: neither is mapped."""
    import shutil
    import sqlite3

    path = tmp_path / "x.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.commit()
    conn.execute("PRAGMA data_version").fetchone()
    if Path("/proc/self/fd").is_dir():
        mapped = walindex.open_for(conn, path)
        assert mapped is not None and walindex.whole(mapped.read())
        mapped.close()
    copy = tmp_path / "copy.sqlite3"
    shutil.copy(path, copy)
    shutil.copy(str(path) + "-shm", str(copy) + "-shm")
    assert walindex.open_for(conn, copy) is None  # nobody here holds the copy's -shm
    conn.close()
    excl = sqlite3.connect(tmp_path / "excl.sqlite3")
    excl.execute("PRAGMA locking_mode=EXCLUSIVE")
    excl.execute("PRAGMA journal_mode=WAL")
    excl.execute("CREATE TABLE t (x INTEGER)")
    excl.commit()
    assert walindex.open_for(excl, tmp_path / "excl.sqlite3") is None
    excl.close()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the header is mapped on Linux")
def test_mapping_the_header_keeps_sqlites_locks_on_the_file(db_url: str, tmp_path: Path) -> None:
    """POSIX locks belong to a process and a file, and closing any descriptor of the file
    drops them all: mapping the header must open and close none, or SQLite's shared lock on
    the -shm file ("in use") is gone, and the next process to open the database takes it for
    unused and reinitialises the file under this one (a crash: the server died so under the
    growth benchmark's purge). Another process must still find that lock held."""
    db = Database(_settings(db_url))

    async def main() -> None:
        await db.run_write(_create)
        for _ in range(2):
            assert db.read_unchanged("a", lambda c: _all(c)) == []
        assert db._wal is not None and db._wal[1] is not None
        code = (
            "import fcntl, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "try:\n"
            "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)\n"  # SQLite's DMS byte
            "except OSError:\n"
            "    sys.exit(0)\n"
            "sys.exit(1)\n"
        )
        shm = str(tmp_path / "db.sqlite3") + "-shm"
        got = subprocess.run([sys.executable, "-c", code, shm], timeout=60, check=False)
        assert got.returncode == 0, "SQLite's lock on the -shm file was dropped"
        # Another process opens, writes and closes: this one goes on reading, unharmed.
        write = (
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute('INSERT INTO t (x) VALUES (5)'); c.commit(); c.close()"
        )
        subprocess.run(
            [sys.executable, "-c", write, str(tmp_path / "db.sqlite3")], check=True, timeout=60
        )
        assert db.read_unchanged("a", lambda c: _all(c)) == [5]
        await db.run_write(_insert, 6, False)
        assert db.read_unchanged("a", lambda c: _all(c)) == [5, 6]
        await db.dispose()

    asyncio.run(main())


def _slow_insert(conn: Connection, x: int, seconds: float) -> int:
    time.sleep(seconds)
    return _insert(conn, x, False)


def test_writer_stats_time_each_batch_and_checkpoint(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``writer_stats``: every batch's transaction is timed, BEGIN to COMMIT (a job that takes
    30 ms puts its batch over the 25 ms bound), every checkpoint too, and jobs are counted;
    a batch that fails is timed as well."""
    monkeypatch.setattr(db_module, "CHECKPOINT_EVERY", 0.0)
    monkeypatch.setattr(db_module, "CHECKPOINT_JOBS", 1)
    db = Database(_settings(db_url))
    assert db.writer_stats() == (
        0,
        db_module.TIMING_BOUNDS,
        ((0,) * (len(db_module.TIMING_BOUNDS) + 1), 0.0),
        ((0,) * (len(db_module.TIMING_BOUNDS) + 1), 0.0),
    )

    async def main() -> None:
        await db.run_write(_create)
        await db.run_write(_slow_insert, 1, 0.03)
        with pytest.raises(Boom):
            await db.run_write(_insert, 2, True)
        checkpoints_run = _writer(db).checkpoints
        await db.dispose()  # the writer stops: nothing is still being timed
        stats = db.writer_stats()
        assert stats is not None
        counts, total = stats.commits
        assert stats.jobs == 3 and sum(counts) == 3
        over_25ms = db_module.TIMING_BOUNDS.index(0.05)  # the bucket (0.025, 0.05] and up
        assert sum(counts[over_25ms:]) >= 1 and total >= 0.03
        checkpoints, spent = stats.checkpoints
        assert sum(checkpoints) >= checkpoints_run >= 1 and spent > 0
        await db.run_write(_insert, 3, False)  # a new writer: nothing goes back
        await db.dispose()
        again = db.writer_stats()
        assert again is not None and again.jobs == 4 and sum(again.commits[0]) == 4
        assert sum(again.checkpoints[0]) >= sum(checkpoints)

    asyncio.run(main())


def test_there_are_no_writer_stats_without_a_writer() -> None:
    """An in-memory SQLite URL has no writer thread (nor has PostgreSQL): None."""
    assert Database(_settings("sqlite:///:memory:")).writer_stats() is None
