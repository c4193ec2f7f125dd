"""`consentry purge` removes expired rows in batches while the server keeps answering."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import CONSENTRY, Server, start_server, stop_server

ROWS = 200_000


def _seed_expired(server: Server, client_id: str, n: int) -> None:
    """Bulk-insert n expired access tokens (and n expired codes' worth of sessions)."""
    now = int(time.time())
    rows = [
        (secrets.token_hex(32), now - 3600 - i % 1000) for i in range(n)
    ]
    if server.db_path is not None:
        db = sqlite3.connect(server.db_path, timeout=30)
        try:
            pk, owner = db.execute(
                "SELECT id, owner_id FROM clients WHERE client_id = ?", (client_id,)
            ).fetchone()
            db.executemany(
                "INSERT INTO access_tokens (token_hash, client_pk, user_id, grant_id, scope, "
                "expires_at) VALUES (?, ?, ?, NULL, NULL, ?)",
                [(h, pk, owner, exp) for h, exp in rows],
            )
            db.commit()
        finally:
            db.close()
        return

    import asyncpg

    async def seed() -> None:
        conn = await asyncpg.connect(server.database_url)
        try:
            pk, owner = await conn.fetchrow(
                "SELECT id, owner_id FROM clients WHERE client_id = $1", client_id
            )
            await conn.copy_records_to_table(
                "access_tokens",
                records=[(h, pk, owner, exp) for h, exp in rows],
                columns=["token_hash", "client_pk", "user_id", "expires_at"],
            )
        finally:
            await conn.close()

    asyncio.run(seed())


def _count_expired(server: Server) -> int:
    now = int(time.time())
    if server.db_path is not None:
        db = sqlite3.connect(server.db_path, timeout=30)
        try:
            return int(
                db.execute(
                    "SELECT count(*) FROM access_tokens WHERE expires_at < ?", (now,)
                ).fetchone()[0]
            )
        finally:
            db.close()

    import asyncpg

    async def count() -> int:
        conn = await asyncpg.connect(server.database_url)
        try:
            return int(
                await conn.fetchval("SELECT count(*) FROM access_tokens WHERE expires_at < $1", now)
            )
        finally:
            await conn.close()

    return asyncio.run(count())


def test_purge_of_200k_expired_rows_runs_in_batches_while_tokens_are_served(
    tmp_path: Path,
) -> None:
    # The traffic loop is as fast as the server; the per-client token limit must not be the
    # thing it measures.
    server = start_server(
        tmp_path, {"CONSENTRY_PURGE_INTERVAL": "0", "CONSENTRY_TOKEN_RATE_LIMIT_PER_SECOND": "0"}
    )
    try:
        client = server.client
        _seed_expired(server, client.client_id, ROWS)
        assert _count_expired(server) >= ROWS

        statuses: list[int] = []
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(timeout=30) as http:
                while not stop.is_set():
                    r = http.post(
                        f"{server.url}/v3/token",
                        data={"grant_type": "client_credentials"},
                        auth=client.auth,
                    )
                    statuses.append(r.status_code)

        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            purge = subprocess.run(
                [*CONSENTRY, "purge", "--batch", "5000"],
                env=server.env,
                capture_output=True,
                text=True,
                timeout=600,
            )
        finally:
            stop.set()
            worker.join()
        assert purge.returncode == 0, purge.stderr
        purged = int(purge.stdout.split()[1])
        assert purged >= ROWS
        assert _count_expired(server) == 0
        # Token requests kept being answered during the purge, every one of them.
        assert len(statuses) >= 5
        assert set(statuses) == {200}, statuses
        # The live token issued during the purge still works.
        live = server.token(client, grant_type="client_credentials").json()["access_token"]
        assert server.api("GET", "/v3/accounts", live).status_code == 200
    finally:
        stop_server(server)
