"""Engine creation and the ways consentry talks to its database.

Two kinds of entry point:

* ``await db.run_read(fn, *args)`` / ``await db.run_write(fn, *args)`` run a plain
  synchronous function of a SQLAlchemy ``Connection`` (Core statements) as one transaction.
  The request hot paths (token endpoint, introspection, revocation, the bearer guard) use
  these. On PostgreSQL they run through ``AsyncConnection.run_sync`` (asyncpg; a write in
  one transaction, a read in autocommit). ``await db.run_single_write(fn, *args)`` is a
  write that is one statement on PostgreSQL, run in autocommit (no BEGIN/COMMIT round
  trips); on SQLite it is ``run_write``. On SQLite:

  - reads run directly on the calling (event-loop) thread on a dedicated pysqlite
    connection: a WAL read is a few microseconds and never waits for a writer;
  - writes go to ONE writer thread that drains a queue of write jobs and runs each batch in
    one ``BEGIN IMMEDIATE`` transaction with a ``SAVEPOINT`` per job (a job that raises rolls
    back only itself and gets its exception), then ``COMMIT``s once: group commit, one fsync
    (``synchronous=FULL``) for every job in the batch. No job's future is resolved before
    that COMMIT returned, so nothing is answered before it is durable.

* ``async with db.read() / db.write()`` hand out an ``AsyncConnection`` for everything else
  (pages, CLI, purge), as before.

SQLite: WAL journal, foreign keys on, ``synchronous=FULL``, a busy timeout (several processes
on one file still work: they queue on SQLite's lock), and write transactions opened with
``BEGIN IMMEDIATE`` so two writers queue on the lock instead of failing to upgrade a read
lock mid-transaction. PostgreSQL: asyncpg, READ COMMITTED; atomicity comes from conditional
``UPDATE ... RETURNING`` statements, not from the isolation level.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from consentry.config import Settings, sqlite_path
from consentry.store.pghot import HotPool, NotHot
from consentry.store.walindex import WalIndexHeader, open_for, whole

T = TypeVar("T")
log = logging.getLogger("consentry.db")

# Most values Database.read_unchanged keeps (a bearer GET's: a token row and a page).
UNCHANGED_MAX = 1024
# ... and how long its mapped WAL-index header may stand in for PRAGMA data_version before
# the PRAGMA is made again (which also checks the header against it), in seconds.
HEADER_VERIFY_EVERY = 0.1
# The writer checkpoints the WAL itself, after it has answered a batch (see _Writer), when
# at least this long and this many jobs have passed since its last checkpoint; SQLite's own
# automatic checkpoint, which runs inside a COMMIT, stays as a safety net at a larger size
# (pages).
CHECKPOINT_EVERY = 0.05
CHECKPOINT_JOBS = 100
WRITER_AUTOCHECKPOINT = 10_000
# Most jobs one group commit carries; more wait for the next batch.
MAX_BATCH = 256
# Bounds (seconds) of the writer's duration histograms (``Timings``): the request latency's.
TIMING_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Filling a batch under concurrency (see _Writer): from this many writes in flight, wait
# until this share of them is queued, at most this long; the load is the most seen in the
# last window (seconds).
FILL_FROM = 4
FILL_FRACTION = 0.75
FILL_WAIT = 0.002
LOAD_WINDOW = 0.05
# ... and only while the event-loop thread that submits the writes was busy at least this
# share of the last window (its CPU time over wall time).
FILL_BUSY = 0.5


def async_url(url: str) -> str:
    """Pick the async driver for a plain SQLAlchemy URL (SPEC §2 convention)."""
    u = make_url(url)
    if u.drivername in ("sqlite", "sqlite+pysqlite"):
        u = u.set(drivername="sqlite+aiosqlite")
    elif u.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        u = u.set(drivername="postgresql+asyncpg")
    return u.render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """The URL Alembic runs with (through the same async driver, via run_sync)."""
    return async_url(url)


def pysqlite_url(url: str) -> str:
    u = make_url(url)
    return u.set(drivername="sqlite+pysqlite").render_as_string(hide_password=False)


class Database:
    """Owns the engines; runs read and write transactions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.is_sqlite = settings.is_sqlite
        url = async_url(settings.database_url)
        kwargs: dict[str, Any] = {}
        path = sqlite_path(settings.database_url) if self.is_sqlite else None
        if self.is_sqlite:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
                pool_timeout=settings.db_pool_timeout,
                # No pool_pre_ping: it is a round trip per checkout (a third of a code
                # exchange's). _drop_closed_on_checkout below checks the socket instead,
                # and a connection that dies in use is a disconnect error: SQLAlchemy
                # invalidates it and every older pooled connection (reconnected on their
                # next checkout), and the request gets a clean 503.
                pool_recycle=1800,
                connect_args={"timeout": settings.db_pool_timeout},
            )
        # hide_parameters: an SQL error in a log must not carry values (hashes, names).
        self.engine: AsyncEngine = create_async_engine(url, hide_parameters=True, **kwargs)
        self._autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._write_lock = asyncio.Lock()
        # The direct SQLite path needs a file both connections open (":memory:" would give
        # each its own empty database); an in-memory URL falls back to the async engine.
        self._direct = self.is_sqlite and path is not None
        self._sync_engine: Engine | None = None
        self._reader: Connection | None = None
        # read_unchanged's values, and the reader connection and data_version they hold for;
        # the WAL-index header (both copies) read before that version, if it is mapped, and
        # until when it may stand in for the PRAGMA.
        self._unchanged: dict[Hashable, Any] = {}
        self._unchanged_version: tuple[Any, int] | None = None
        self._unchanged_header: bytes | None = None
        self._verify_by = 0.0
        self._sqlite_file = path
        # The reader connection and its database's mapped WAL-index header (None: not
        # mappable for that connection, see store/walindex.py).
        self._wal: tuple[Any, WalIndexHeader | None] | None = None
        self._writer: _Writer | None = None
        # The writer's durations and the jobs of writers already stopped, kept here so that
        # writer_stats() never goes back when a writer stops (dispose) and another starts.
        self._commit_timings = Timings()
        self._checkpoint_timings = Timings()
        self._jobs_of_stopped = 0
        # PostgreSQL: the hot functions on raw asyncpg connections (store/pghot.py).
        self._hot: HotPool | None = None
        if self.is_sqlite:
            _configure_sqlite(self.engine.sync_engine)
        else:
            event.listen(self.engine.sync_engine.pool, "checkout", _drop_closed_on_checkout)
            sync = self.engine.sync_engine
            cargs, cparams = sync.dialect.create_connect_args(sync.url)
            self._hot = HotPool(
                sync.dialect,
                cargs,
                {**cparams, **kwargs["connect_args"]},
                settings.db_pool_size,
                settings.db_max_overflow,
                settings.db_pool_timeout,
            )
        if self._direct:
            self._sync_engine = create_engine(
                pysqlite_url(settings.database_url),
                hide_parameters=True,
                poolclass=NullPool,
                connect_args={"timeout": 30, "check_same_thread": False},
            )
            _configure_sqlite(self._sync_engine)

    # --- synchronous functions as transactions -------------------------------------------

    async def run_read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in one read transaction and return its result."""
        if self._direct:
            return self.read_now(fn, *args)
        # PostgreSQL reads run in autocommit: under READ COMMITTED every statement has its own
        # snapshot anyway, and this saves the BEGIN and COMMIT round trips.
        if self.is_sqlite:  # in-memory SQLite: no second connection can see it
            async with self.engine.connect() as aconn, aconn.begin():
                return await aconn.run_sync(fn, *args)
        if self._hot is not None:
            try:
                return await self._hot.run(fn, args, write=False)
            except NotHot:  # a read: running it again the ordinary way undoes nothing
                pass
        return await self._autocommit(fn, args)

    @property
    def direct(self) -> bool:
        """SQLite on a file: reads on the calling thread, writes through the writer thread."""
        return self._direct

    def _reader_conn(self) -> Connection:
        """The direct reads' connection on this thread, opened again if it was closed."""
        conn = self._reader
        if conn is None or conn.closed:
            assert self._sync_engine is not None
            conn = self._reader = self._sync_engine.connect()
        return conn

    def read_now(self, fn: Callable[..., T], *args: Any) -> T:
        """``run_read`` without waiting, for direct SQLite only (``direct``): the same
        connection on this thread, the same transaction rules."""
        conn = self._reader_conn()
        try:
            return fn(conn, *args)
        finally:
            conn.rollback()  # a read: ends the snapshot (nothing to commit)

    def read_unchanged(self, key: Hashable, fn: Callable[..., T | None], *args: Any) -> T | None:
        """``read_now``, or the value the same read (same ``key``) gave earlier, if no
        connection (this process's writer, another process, a CLI) has committed anything
        to the database since: direct SQLite only.

        SQLite's ``PRAGMA data_version`` on the reader connection changes whenever another
        connection commits to the file, whatever process it is in (it is read from the
        WAL's shared header, the same check that starts any read). It is read *before*
        ``fn`` runs and kept with the value; a later read gets the value back only while
        the version is still that one, so a value is never older than the database: a
        revoked token or a deleted row is seen by the very next read, as without this.
        What depends on time (a token's expiry) the caller checks on every call. ``fn``'s
        None is not kept; the values are shared, so they must not be changed. At most
        ``UNCHANGED_MAX`` values are kept (then they are dropped all at once).

        Where the WAL-index header is mapped (store/walindex.py), the PRAGMA is skipped
        while the header's two copies are still the bytes read before the kept version:
        the same test, as a memory read, without a read transaction's two ``fcntl`` calls.
        The PRAGMA is still made at least every ``HEADER_VERIFY_EVERY`` seconds; should it
        ever find a commit the mapped header did not show, the header is dropped for good
        (logged) and every call makes the PRAGMA again."""
        raw = self._reader_conn().connection.dbapi_connection
        cache = self._unchanged
        wal = self._wal
        header = wal[1] if wal is not None and wal[0] is raw else None
        before = None
        if header is not None:
            before = header.read()
            if before == self._unchanged_header and time.monotonic() < self._verify_by:
                # Both copies as they were before the kept version was read: no commit has
                # completed since, by any connection (nor is one half-way: the copies agree).
                got = cache.get(key)
                if got is not None:
                    return got  # type: ignore[no-any-return]
                return self._keep(key, fn, args)
        version = (raw, raw.execute("PRAGMA data_version").fetchone()[0])  # type: ignore[union-attr]
        if header is not None:
            after = header.read()  # read after the PRAGMA: it shows every commit the PRAGMA saw
            kept = self._unchanged_version
            if kept is not None and kept[0] is raw and kept[1] != version[1] and (
                after == self._unchanged_header
            ):
                # data_version moved and the mapped header did not: it is not SQLite's.
                log.error("sqlite: the mapped WAL-index header missed a commit; it is no "
                          "longer used (PRAGMA data_version on every kept read)")
                header.close()
                self._wal = (raw, None)
                header = before = None
        elif wal is None or wal[0] is not raw:
            self._map_header(raw)
        if version != self._unchanged_version:
            # A commit somewhere, or a new reader connection (whose counter starts anew).
            cache.clear()
            self._unchanged_version = version
            got = None
        else:
            got = cache.get(key)
        # ``before`` was read before this version: a later read that finds the header still
        # so knows nothing was committed since (a torn read is never equal to a whole one).
        self._unchanged_header = before if before is not None and whole(before) else None
        self._verify_by = time.monotonic() + HEADER_VERIFY_EVERY
        if got is not None:
            return got  # type: ignore[no-any-return]
        return self._keep(key, fn, args)

    def _keep(self, key: Hashable, fn: Callable[..., T | None], args: tuple[Any, ...]) -> T | None:
        value = self.read_now(fn, *args)
        if value is not None:
            cache = self._unchanged
            if len(cache) >= UNCHANGED_MAX:
                cache.clear()
            cache[key] = value
        return value

    def _map_header(self, raw: Any) -> None:
        """Map the reader connection's WAL-index header, or note that it cannot be."""
        if self._wal is not None and self._wal[1] is not None:
            self._wal[1].close()
        path = self._sqlite_file
        self._wal = (raw, open_for(raw, path) if path is not None else None)

    async def run_single_write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)``, a write that PostgreSQL gets as ONE statement.

        On PostgreSQL it runs in autocommit: a single statement is atomic on its own (all of
        its data-modifying CTEs commit together or not at all), so BEGIN and COMMIT would
        only add two round trips. ``fn`` must therefore issue at most one data-modifying
        statement when ``conn.dialect.name == "postgresql"``. On SQLite this is
        ``run_write`` (a job in a group commit), and ``fn`` may take several statements and
        raise to roll them back."""
        if self.is_sqlite:
            return await self.run_write(fn, *args)
        if self._hot is not None:
            try:
                return await self._hot.run(fn, args, write=True)
            except NotHot:  # raised before fn executed anything (HotPool.run checks)
                pass
        return await self._autocommit(fn, args)

    async def _autocommit(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        # The same pool; the engine sets the isolation level at checkout itself, instead of
        # an execution_options() call (and its await) on every connection.
        async with self._autocommit_engine.connect() as aconn:
            return await aconn.run_sync(fn, *args)

    async def run_write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in a write transaction; return once it is committed.

        An exception from ``fn`` rolls back everything ``fn`` did and is raised here."""
        if self._direct:
            if self._writer is None:
                assert self._sync_engine is not None
                self._writer = _Writer(
                    self._sync_engine, self._commit_timings, self._checkpoint_timings
                )
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[T] = loop.create_future()
            self._writer.submit(fn, args, fut, loop)
            return await fut
        async with self.write() as aconn:
            return await aconn.run_sync(fn, *args)

    # --- async connections (everything off the hot path) ---------------------------------

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits on success and rolls back on any exception."""
        if not self.is_sqlite:
            async with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        # SQLite has one writer at a time. Queue this process's async writers here, on an
        # asyncio lock, instead of letting pooled connections contend inside SQLite, whose
        # busy handler sleeps (up to 100 ms a try). The group-commit writer thread and
        # other processes on the same file queue on busy_timeout.
        async with self._write_lock, self.engine.connect() as conn:
            conn = await conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            async with conn.begin():
                yield conn

    def write_stats(self) -> tuple[int, int, int]:
        """(batches, jobs, jobs waiting) of the SQLite group-commit writer; zeros if none."""
        w = self._writer
        if w is None:
            return 0, 0, 0
        return w.batches, w.jobs, w._queue.qsize()

    def writer_stats(self) -> WriterStats | None:
        """The SQLite group-commit writer's jobs and durations (``WriterStats``);
        None where there is no such writer (PostgreSQL, an in-memory SQLite URL)."""
        if not self._direct:
            return None
        w = self._writer
        return WriterStats(
            self._jobs_of_stopped + (w.jobs if w is not None else 0),
            TIMING_BOUNDS,
            self._commit_timings.snapshot(),
            self._checkpoint_timings.snapshot(),
        )

    async def dispose(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await asyncio.get_running_loop().run_in_executor(None, writer.stop)
            self._jobs_of_stopped += writer.jobs
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._unchanged.clear()
        self._unchanged_version = None
        self._unchanged_header = None
        if self._wal is not None:
            if self._wal[1] is not None:
                self._wal[1].close()
            self._wal = None
        if self._sync_engine is not None:
            self._sync_engine.dispose()
        if self._hot is not None:
            await self._hot.close()
        await self.engine.dispose()


_Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class Timings:
    """Durations counted by bucket of ``TIMING_BOUNDS`` (a value goes to the first bound it
    is less than or equal to; the last count is over every bound) and their sum: kept by
    the writer thread, read by the event loop's (``/metrics``), so under a lock."""

    __slots__ = ("_counts", "_sum", "_lock")

    def __init__(self) -> None:
        self._counts = [0] * (len(TIMING_BOUNDS) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        i = bisect_left(TIMING_BOUNDS, seconds)
        with self._lock:
            self._counts[i] += 1
            self._sum += seconds

    def snapshot(self) -> tuple[tuple[int, ...], float]:
        """(the count of each bucket, not cumulative, then the count over every bound; the
        sum of the durations)."""
        with self._lock:
            return tuple(self._counts), self._sum


class WriterStats(NamedTuple):
    """What the SQLite group-commit writer has done since it started (one per process).

    ``commits``: the wall time of each batch's transaction, ``BEGIN IMMEDIATE`` to the
    return of its ``COMMIT`` — the statements of every job in it and the fsync of the WAL
    (``synchronous=FULL``): what every write request in the batch waited for at least.
    ``checkpoints``: the writer's own WAL checkpoints (``_Writer._checkpoint``), during
    which no batch is written. Each is ``Timings.snapshot()``; ``bounds`` their buckets."""

    jobs: int
    bounds: tuple[float, ...]
    commits: tuple[tuple[int, ...], float]
    checkpoints: tuple[tuple[int, ...], float]


class _Writer:
    """One thread, one SQLite connection, group commit.

    Jobs that arrive while a batch is being written (and fsynced) form the next batch, so
    under load many requests share one COMMIT; a lone request is committed at once.

    Under concurrency the next batch is also *filled* before it starts (``_fill_target``):
    taking whatever is queued the moment the writer is free splits the requests in flight
    into one large batch and one of a job or two (measured: 30-and-1 with 32 clients), and
    while the large batch is fsynced every request is waiting for it and the core idles.
    So when the recent load (jobs in a batch plus jobs queued behind it, the most in the
    last ``LOAD_WINDOW``) was at least ``FILL_FROM``, the writer waits until
    ``FILL_FRACTION`` of that many jobs are queued, at most ``FILL_WAIT``; the rest are
    still being worked on by the event loop during the fsync. A lone request, or a load
    below ``FILL_FROM``, is committed at once as before. So is everything while the event
    loop's thread was busy less than ``FILL_BUSY`` of the window: with independent clients
    at a moderate rate (open-loop load), waiting for more jobs only adds latency (measured:
    p50 1.06 -> 2.44 ms at 1,500 requests/s), while with the loop busy the jobs a batch
    waits for are already being worked on.

    The WAL is checkpointed by the writer too, *after* it has answered a batch, at most
    every ``CHECKPOINT_EVERY`` seconds and ``CHECKPOINT_JOBS`` jobs. SQLite's automatic
    checkpoint runs inside the COMMIT that crosses its size (1,000 pages by default), so the
    whole batch waited for it (~8 ms instead of ~2 under the refresh load) while the event
    loop, its requests all in that batch, had nothing to do. Here the batch's answers leave
    first and the event loop works on the next requests during the checkpoint. SQLite's own
    stays on at ``WRITER_AUTOCHECKPOINT`` pages, should this one fall behind."""

    def __init__(
        self, engine: Engine, commit_timings: Timings, checkpoint_timings: Timings
    ) -> None:
        self._engine = engine
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.batches = 0  # transactions committed or rolled back (for tests and metrics)
        self.jobs = 0
        self.checkpoints = 0  # WAL checkpoints run after a batch was answered
        # How long each batch's transaction and each checkpoint took (wall time); the
        # Database's, which outlive this writer.
        self.commit_timings = commit_timings
        self.checkpoint_timings = checkpoint_timings
        self.fill_waits = 0  # batches that waited to fill, and how many of them timed out
        self.fill_timeouts = 0
        self._filled = threading.Event()
        self._want = 0  # queued jobs that end the current wait (0: not waiting)
        self._peak = 0  # the most jobs in flight seen in the current window
        self._expect = 0  # the previous window's peak: the load the next batch is sized for
        self._window_end = 0.0
        self._busy = 0.0  # the submitting thread's busy share in the last window
        self._submitter = threading.get_ident()  # the event-loop thread that submits jobs
        self._cpu_mark: tuple[int, float, float] | None = None
        self._thread = threading.Thread(
            target=self._run, name="consentry-sqlite-writer", daemon=True
        )
        self._thread.start()

    def submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        fut: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._submitter = threading.get_ident()
        self._queue.put((fn, args, fut, loop))
        want = self._want
        if want and self._queue.qsize() >= want:
            self._filled.set()

    def stop(self) -> None:
        self._queue.put(None)
        self._filled.set()
        self._thread.join(timeout=30)

    def _fill_target(self, now: float) -> int:
        """How many jobs the next batch waits for (1: none), from the last window's load."""
        if now >= self._window_end:
            # A window with no batch at all in the one before it means the load stopped.
            stale = now >= self._window_end + LOAD_WINDOW
            self._expect = 0 if stale else self._peak
            self._peak = 0
            self._busy = self._loop_busy(now)
            self._window_end = now + LOAD_WINDOW
        if self._expect < FILL_FROM or self._busy < FILL_BUSY:
            return 1
        return min(MAX_BATCH, int(self._expect * FILL_FRACTION))

    def _loop_busy(self, now: float) -> float:
        """The submitting thread's CPU time over wall time since the last call (0..1); 1.0
        where a thread's CPU clock cannot be read (the fill then depends on load alone)."""
        cpu_clock = getattr(time, "pthread_getcpuclockid", None)
        if cpu_clock is None:  # not on this platform (macOS)
            return 1.0
        ident = self._submitter
        try:
            cpu = time.clock_gettime(cpu_clock(ident))
        except (OSError, OverflowError):  # that thread is gone
            self._cpu_mark = None
            return 0.0
        mark, self._cpu_mark = self._cpu_mark, (ident, now, cpu)
        if mark is None or mark[0] != ident or now <= mark[1]:
            return 0.0
        return (cpu - mark[2]) / (now - mark[1])

    def _note_load(self, in_flight: int) -> None:
        if in_flight > self._peak:
            self._peak = in_flight

    def _wait_to_fill(self, want: int) -> None:
        """Block until ``want`` jobs (counting the one in hand) are queued, or FILL_WAIT."""
        self._filled.clear()
        self._want = want - 1
        try:
            if self._queue.qsize() < want - 1:
                self.fill_waits += 1
                if not self._filled.wait(FILL_WAIT):
                    self.fill_timeouts += 1
        finally:
            self._want = 0

    def _take(self, batch: list[_Job]) -> bool:
        """Move queued jobs into ``batch`` (up to MAX_BATCH); True if the stop marker came."""
        while len(batch) < MAX_BATCH:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return False
            if job is None:
                return True
            batch.append(job)
        return False

    def _run(self) -> None:
        conn = self._engine.connect().execution_options(sqlite_begin="BEGIN IMMEDIATE")
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute(f"PRAGMA wal_autocheckpoint={WRITER_AUTOCHECKPOINT}")
        last_checkpoint, jobs_then = time.monotonic(), 0
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                want = self._fill_target(time.monotonic())
                if want > 1:
                    self._wait_to_fill(want)
                batch = [first]
                stop = self._take(batch)
                started = time.perf_counter()
                outcomes = _write_batch(conn, batch)
                self.commit_timings.observe(time.perf_counter() - started)
                self.batches += 1
                self.jobs += len(batch)
                self._note_load(len(batch) + self._queue.qsize())
                _deliver(outcomes, batch)
                now = time.monotonic()
                if (
                    now - last_checkpoint >= CHECKPOINT_EVERY
                    and self.jobs - jobs_then >= CHECKPOINT_JOBS
                ):
                    last_checkpoint, jobs_then = now, self.jobs
                    self._checkpoint(raw)
                if stop:
                    return
        finally:
            conn.close()

    def _checkpoint(self, raw: Any) -> None:
        """Copy the WAL's committed pages back into the database file (PASSIVE: it never
        waits for a reader or writer, and does what it can)."""
        started = time.perf_counter()
        try:
            raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
            self.checkpoint_timings.observe(time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - the next one, or SQLite's own, goes on
            log.warning("sqlite checkpoint failed: %s", type(exc).__name__)


def _write_batch(conn: Connection, batch: list[_Job]) -> list[tuple[bool, Any]]:
    """Run a batch in one transaction; (ok, result-or-exception) per job, in order."""
    outcomes: list[tuple[bool, Any]] = []
    try:
        conn.begin()
        if len(batch) == 1:
            fn, args, _fut, _loop = batch[0]
            try:
                outcomes.append((True, fn(conn, *args)))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
                conn.rollback()
                return [(False, exc)]
        else:
            # Optimistically, every job straight in the batch's transaction: jobs almost never
            # raise (a revoked grant, a database error), and a SAVEPOINT and RELEASE per job
            # cost two statements each. If one does raise, everything is rolled back and the
            # batch runs again below with a savepoint per job; a job is a function of the
            # connection and its arguments only, so the second run is the first one's twin.
            results: list[tuple[bool, Any]] = []
            try:
                for fn, args, _fut, _loop in batch:
                    results.append((True, fn(conn, *args)))
            except BaseException:  # noqa: BLE001 - rerun with savepoints, below
                conn.rollback()
                conn.begin()
            else:
                conn.commit()  # one fsync for the whole batch
                return results
            # A SAVEPOINT per job, on the pysqlite connection itself (SQLAlchemy's root
            # transaction is the batch's BEGIN IMMEDIATE; these nest inside it).
            raw = conn.connection.dbapi_connection
            assert raw is not None
            for fn, args, _fut, _loop in batch:
                raw.execute("SAVEPOINT job")
                try:
                    result = fn(conn, *args)
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
                    raw.execute("ROLLBACK TO job")
                    raw.execute("RELEASE job")
                    outcomes.append((False, exc))
                else:
                    raw.execute("RELEASE job")
                    outcomes.append((True, result))
        conn.commit()  # one fsync for the whole batch
    except BaseException as exc:  # noqa: BLE001 - BEGIN/SAVEPOINT/COMMIT failed: nobody wins
        log.warning("sqlite write batch of %d failed: %s", len(batch), type(exc).__name__)
        try:
            conn.rollback()
        except Exception:  # noqa: BLE001, S110 - the connection may be unusable; reported
            pass
        return [(False, exc)] * len(batch)
    return outcomes


def _deliver(outcomes: list[tuple[bool, Any]], batch: list[_Job]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for (ok, value), (_fn, _args, fut, loop) in zip(outcomes, batch, strict=True):
        by_loop.setdefault(loop, []).append((fut, ok, value))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, items)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            pass


def _resolve(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for fut, ok, value in items:
        if fut.cancelled():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


def _drop_closed_on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """A pool checkout hook that costs no round trip (unlike ``pool_pre_ping``).

    asyncpg marks a connection closed as soon as the event loop sees its socket end (the
    server restarted, a proxy or firewall cut it). Such a connection is refused here: the
    pool discards it and checks out another, connecting anew (SQLAlchemy's documented
    "pessimistic disconnect" hook). A connection that dies silently is found when it is
    used: a disconnect error, a 503, and the pool is invalidated."""
    raw = getattr(dbapi_conn, "_connection", None)
    is_closed = getattr(raw, "is_closed", None)
    if is_closed is not None and is_closed():
        raise sa_exc.DisconnectionError("connection closed by the peer")


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling is bypassed so that we emit BEGIN ourselves
    # (SQLAlchemy documents this recipe for SERIALIZABLE / IMMEDIATE transactions, and it is
    # what makes SAVEPOINT work on pysqlite).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Straight on pysqlite, as the hot path's statements (store/hot.py: Prepared): through
        # exec_driver_sql a BEGIN cost as much as SQLAlchemy's whole execution context (a
        # BEGIN + COMMIT 37-61 µs against 23-30). An error still arrives wrapped, as from
        # exec_driver_sql (OperationalError for a busy database: the 503 handler's).
        sql = conn.get_execution_options().get("sqlite_begin", "BEGIN")
        try:
            conn.connection.dbapi_connection.execute(sql)
        except Exception as exc:
            conn._handle_dbapi_exception(exc, sql, (), None, None)
