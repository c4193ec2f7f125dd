"""Apply the Alembic migrations (``consentry db upgrade``; also run by ``serve`` at start)."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

from consentry.config import Settings

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings) -> None:
    """Bring the database to the newest revision. Safe to call from inside an event loop."""
    errors: list[BaseException] = []

    def work() -> None:
        try:
            command.upgrade(alembic_config(settings), "head")
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    # env.py runs its own event loop, so it must not run on a thread that has one.
    t = threading.Thread(target=work, name="consentry-migrate")
    t.start()
    t.join()
    if errors:
        raise errors[0]
