"""Engine creation and the two kinds of transaction consentry uses: read and write.

SQLite: WAL journal, foreign keys on, a busy timeout, and write transactions opened with
``BEGIN IMMEDIATE`` so that two writers queue on the lock instead of failing to upgrade a
read lock mid-transaction. PostgreSQL: asyncpg, READ COMMITTED; atomicity comes from
conditional ``UPDATE ... RETURNING`` statements, not from the isolation level.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from consentry.config import Settings, sqlite_path


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


class Database:
    """Owns the engine; hands out read and write transactions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.is_sqlite = settings.is_sqlite
        url = async_url(settings.database_url)
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            path = sqlite_path(settings.database_url)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
                pool_timeout=settings.db_pool_timeout,
                pool_pre_ping=True,
                pool_recycle=1800,
                connect_args={"timeout": settings.db_pool_timeout},
            )
        # hide_parameters: an SQL error in a log must not carry values (hashes, names).
        self.engine: AsyncEngine = create_async_engine(url, hide_parameters=True, **kwargs)
        self._write_lock = asyncio.Lock()
        if self.is_sqlite:
            _configure_sqlite(self.engine)

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
        # SQLite has one writer at a time. Queue this process's writers here, on an asyncio
        # lock, instead of letting pooled connections contend inside SQLite, whose busy
        # handler sleeps (up to 100 ms a try) and made the token endpoint's p99 seconds long.
        # Other processes on the same file still queue on busy_timeout.
        async with self._write_lock, self.engine.connect() as conn:
            conn = await conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            async with conn.begin():
                yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling is bypassed so that we emit BEGIN ourselves
    # (SQLAlchemy documents this recipe for SERIALIZABLE / IMMEDIATE transactions).
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))
