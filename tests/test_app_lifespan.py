"""Start-up work of the ASGI app's lifespan."""

from __future__ import annotations

import asyncio
import gc
import secrets
from pathlib import Path

from consentry.app import create_app
from consentry.config import Settings
from consentry.store.migrate import upgrade


def test_startup_freezes_what_was_loaded_out_of_the_cyclic_collector(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {},
        database_url=f"sqlite+aiosqlite:///{tmp_path}/c.db",
        secret_key=secrets.token_hex(32),
        purge_interval=0,
    ).resolved()
    upgrade(settings)
    app = create_app(settings)

    async def run() -> int:
        async with app.router.lifespan_context(app):
            return gc.get_freeze_count()

    gc.unfreeze()
    try:
        frozen = asyncio.run(run())
    finally:
        gc.unfreeze()
    assert frozen > 10_000
