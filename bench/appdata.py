"""What the in-process tools (``bench.sqlcount``, ``bench.inprocess``, and tests that drive
the app in process) start from: the app on a fresh, migrated database, and in it a developer,
a user, a confidential client, and codes."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

REDIRECT_URI = "https://app.example/cb"


def fresh_app(database_url: str, env: dict[str, str] | None = None, **settings: Any) -> Any:
    """consentry's ASGI app on ``database_url`` after migrating it, with a throwaway secret
    key and no purge task (``env``: CONSENTRY_* variables; ``settings``: more overrides)."""
    from consentry.app import create_app
    from consentry.config import Settings
    from consentry.store.migrate import upgrade

    resolved = Settings.from_env(
        env or {},
        database_url=database_url,
        secret_key=secrets.token_hex(32),
        purge_interval=0,
        **settings,
    ).resolved()
    upgrade(resolved)
    return create_app(resolved)


@dataclass(frozen=True)
class Seeded:
    user: int
    client_id: str
    client_pk: int
    secret: str


async def seed(rt: Any) -> Seeded:
    """A developer, a user and the developer's confidential client (``rt``: the app's
    Runtime)."""
    from consentry.store.clients import create_client, new_client_id
    from consentry.store.users import create_user

    secret = secrets.token_urlsafe(32)
    async with rt.db.write() as conn:
        dev = await create_user(conn, email="dev@example.com", password_hash="x", name="Dev")
        user = await create_user(conn, email="user@example.com", password_hash="x", name="U")
        client_id = new_client_id()
        client_pk = await create_client(
            conn, owner_id=dev, name="bench", redirect_uris=[REDIRECT_URI],
            secret_hash=rt.keys.hash(secret, "client_secret"), client_id=client_id,
        )
    return Seeded(user, client_id, client_pk, secret)


async def new_code(rt: Any, s: Seeded, scope: str | None = None) -> str:
    """A fresh authorization code of the user for the client, in a grant of its own
    (``scope``: the scopes granted, space-separated; None: full access)."""
    from consentry.oauth.issue import CODE_KIND
    from consentry.store import tokens

    code = secrets.token_urlsafe(32)
    now = int(time.time())

    def write(conn: Any) -> None:
        grant = tokens.insert_grant(
            conn, user_id=s.user, client_pk=s.client_pk, scope=scope, now=now
        )
        tokens.add_code(
            conn, code_hash=rt.keys.hash(code, CODE_KIND), grant_id=grant,
            client_pk=s.client_pk, user_id=s.user, redirect_uri=REDIRECT_URI,
            redirect_uri_sent=False, scope=scope, code_challenge=None, expires_at=now + 600,
        )

    await rt.db.run_write(write)
    return code
