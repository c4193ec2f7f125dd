"""Alembic environment: runs migrations through the async engine, one node at a time."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from consentry.store.db import async_url
from consentry.store.models import metadata

config = context.config
# Several nodes may run `consentry db upgrade` at once; on PostgreSQL they queue on this lock.
MIGRATION_LOCK_ID = 0x636F6E73  # "cons"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_ID})
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_ID})


async def _main() -> None:
    url: Any = config.get_main_option("sqlalchemy.url")
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("consentry migrations run online only: use `consentry db upgrade`")
asyncio.run(_main())
