"""The request hot path on PostgreSQL: the hot functions on raw asyncpg connections.

``Database.run_read`` and ``run_single_write`` run plain synchronous functions of a
connection (``store.hot``, the guard, client authentication). Through SQLAlchemy's async
engine each call checked out a pooled connection (fairy, reset-on-return, isolation level),
entered a greenlet, and went through the asyncpg adapter's cursor emulation: about 100 µs
of CPU per call on top of asyncpg's own 40 µs (docs/performance.md; per request:
``python -m bench.inprocess bearer_get --server --database-url postgresql://...``).

Here the same functions get a :class:`HotConnection`: the dialect (statements are compiled
by SQLAlchemy, once, as before) and an asyncpg connection from :class:`HotPool`, a plain
list of open connections behind a semaphore. ``store.hot.Prepared`` runs its statement on
it with ``await_only`` from the greenlet that :func:`sqlalchemy.util.greenlet_spawn` gives
the function. Everything else a function might do with its connection (``conn.execute`` of
a statement built per call, ``conn.connection``, ...) raises :class:`NotHot` *before* it
runs, and the caller runs the whole function again the ordinary way: harmless for a read
(autocommit: nothing to undo); for a single write only if nothing was executed yet, which
:meth:`HotPool.run` enforces.

No session state is changed on these connections (autocommit statements, no ``SET``), so a
returned connection needs no reset round trip. One that failed other than by a server-side
error (a lost socket, a cancelled wait mid-statement) is closed, and so is every idle one:
if one connection was cut, the others probably were too (SQLAlchemy invalidates its pool the
same way). The next call connects anew; until the database is back, each call fails with
asyncpg's connection error, which the app answers with a 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.util import await_only, greenlet_spawn

T = TypeVar("T")
# Failures after which a connection is not used again: the socket is gone, or a statement
# may still be running on it (a wait cancelled mid-statement). A server-side error (a
# constraint, a bad statement) leaves the connection as usable as before.
_BREAKS_CONNECTION = (
    asyncio.CancelledError,
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
)


# Server errors that say "not now" rather than "never": operator intervention (shutdown,
# cancelled statement), insufficient resources, a connection failure, a serialization
# failure or deadlock.
_TRANSIENT = (
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.PostgresConnectionError,
    asyncpg.TransactionRollbackError,
)


class NotHot(Exception):
    """A function used its connection in a way the hot path does not run; nothing of that
    use happened. Run the function the ordinary way."""


class HotConnection:
    """The ``conn`` a hot function gets on PostgreSQL (see the module docstring)."""

    __slots__ = ("dialect", "raw", "executed")

    def __init__(self, dialect: Dialect, raw: asyncpg.Connection) -> None:
        self.dialect = dialect
        self.raw = raw
        self.executed = 0  # statements run so far

    def fetch(self, sql: str, values: list[Any]) -> list[Any]:
        """Run one statement (in autocommit) and return its records."""
        self.executed += 1
        try:
            return await_only(self.raw.fetch(sql, *values))
        except asyncpg.IntegrityConstraintViolationError as exc:
            # As SQLAlchemy raises it, so that callers catch one exception type.
            raise sa_exc.IntegrityError(sql, None, exc) from exc
        except asyncpg.PostgresError as exc:
            if self.raw.is_closed() or isinstance(exc, _TRANSIENT):
                # The server ended the connection (shutdown, restart, an administrator) or
                # could not run the statement right now: SQLAlchemy's OperationalError,
                # which the app answers with 503 as before.
                raise sa_exc.OperationalError(sql, None, exc) from exc
            raise  # a statement the server refuses: a bug, not an outage

    def execute(self, *_args: Any, **_kwargs: Any) -> Any:
        raise NotHot("conn.execute")

    def __getattr__(self, name: str) -> Any:  # anything else of SQLAlchemy's Connection
        raise NotHot(name)


class HotPool:
    """At most ``size + overflow`` asyncpg connections of one event loop in use, opened when
    first needed; up to ``size`` of them are kept open when idle (as SQLAlchemy's
    ``pool_size`` and ``max_overflow``)."""

    def __init__(
        self,
        dialect: Dialect,
        cargs: Any,
        cparams: dict[str, Any],
        size: int,
        overflow: int,
        timeout: float,
    ) -> None:
        # What SQLAlchemy's asyncpg dialect passes to asyncpg.connect for the same URL, less
        # its own options (the statement cache size is asyncpg's option under another name).
        cparams = dict(cparams)
        cparams.pop("async_creator_fn", None)
        cparams.pop("prepared_statement_name_func", None)
        if "prepared_statement_cache_size" in cparams:
            cparams["statement_cache_size"] = int(cparams.pop("prepared_statement_cache_size"))
        self._cargs = list(cargs)
        self._cparams = cparams
        self._dialect = dialect
        self._size = size + overflow  # in use at once
        self._keep = size  # kept open when idle; an overflow connection is closed
        self._timeout = timeout
        self._idle: list[asyncpg.Connection] = []
        self._closing: set[asyncio.Future[None]] = set()
        self._loggers: list[Callable[[Any], None]] = []
        self._slots = asyncio.Semaphore(size)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> T:
        """``fn(conn, *args)`` on a pooled connection; :class:`NotHot` if ``fn`` needs the
        ordinary way (and, for a ``write``, executed nothing before it found out)."""
        raw = await self._acquire()
        conn = HotConnection(self._dialect, raw)
        keep = True
        try:
            return await greenlet_spawn(fn, conn, *args)
        except NotHot:
            if write and conn.executed:
                raise RuntimeError(
                    f"{getattr(fn, '__name__', fn)} ran a statement the hot path cannot run "
                    "after a write: a single write must use prepared statements only"
                ) from None
            raise
        except _BREAKS_CONNECTION:
            keep = False
            raise
        finally:
            self._release(raw, keep)

    async def _acquire(self) -> asyncpg.Connection:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections and the semaphore belong to one loop
            self._drop_idle()
            self._slots = asyncio.Semaphore(self._size)
            self._loop = loop
        slots = self._slots
        if slots.locked():
            try:
                if asyncio.current_task() is not None:  # no extra task per wait
                    async with asyncio.timeout(self._timeout):
                        await slots.acquire()
                else:
                    await asyncio.wait_for(slots.acquire(), self._timeout)
            except TimeoutError:
                raise sa_exc.TimeoutError(
                    f"no PostgreSQL connection free within {self._timeout} s"
                ) from None
        else:
            await slots.acquire()
        try:
            while self._idle:
                raw = self._idle.pop()
                if not raw.is_closed():
                    return raw
            raw = await asyncpg.connect(*self._cargs, **self._cparams)
            for callback in self._loggers:
                raw.add_query_logger(callback)
            return raw
        except BaseException:
            slots.release()
            raise

    def add_query_logger(self, callback: Callable[[Any], None]) -> None:
        """Have ``callback(record)`` called for every statement run here (asyncpg's query
        logger; ``record.query`` is the SQL): on the open connections and on new ones.
        ``python -m bench.sqlcount`` counts the hot path's statements with it."""
        self._loggers.append(callback)
        for raw in self._idle:
            raw.add_query_logger(callback)

    def _release(self, raw: asyncpg.Connection, keep: bool) -> None:
        if keep and not raw.is_closed():
            if len(self._idle) < self._keep:
                self._idle.append(raw)
            else:
                self._close_later(raw)
        else:
            raw.terminate()
            self._drop_idle()
        self._slots.release()

    def _close_later(self, raw: asyncpg.Connection) -> None:
        task = asyncio.ensure_future(raw.close(timeout=5))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for raw in idle:
            raw.terminate()

    async def close(self) -> None:
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        idle, self._idle = self._idle, []
        for raw in idle:
            try:
                await asyncio.wait_for(raw.close(), 5)
            except Exception:  # noqa: BLE001 - closing anyway
                raw.terminate()
