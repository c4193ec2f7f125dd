"""Queries on registered applications (OAuth clients)."""

from __future__ import annotations

import json
import secrets
import time

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from consentry.store import hot
from consentry.store.hot import CLIENT_COLUMNS, Client, client_from_row
from consentry.store.models import clients, users

__all__ = ["Client", "client_by_client_id"]


_COLUMNS = CLIENT_COLUMNS


def _client(row: object) -> Client:
    return client_from_row(row)


def new_client_id() -> str:
    return secrets.token_hex(16)


async def create_client(
    conn: AsyncConnection,
    *,
    owner_id: int,
    name: str,
    redirect_uris: list[str],
    secret_hash: str,
    client_id: str,
    description: str = "",
    logo: bytes | None = None,
    logo_mime: str | None = None,
    is_resource_server: bool = False,
    allow_implicit: bool = False,
) -> int:
    result = await conn.execute(
        clients.insert()
        .values(
            client_id=client_id,
            secret_hash=secret_hash,
            owner_id=owner_id,
            name=name,
            description=description,
            logo=logo,
            logo_mime=logo_mime,
            redirect_uris=json.dumps(redirect_uris),
            is_resource_server=is_resource_server,
            allow_implicit=allow_implicit,
            created_at=int(time.time()),
        )
        .returning(clients.c.id)
    )
    return int(result.scalar_one())


async def client_by_client_id(conn: AsyncConnection, client_id: str) -> Client | None:
    return await conn.run_sync(hot.client_by_client_id, client_id)


async def clients_of_owner(conn: AsyncConnection, owner_id: int) -> list[Client]:
    rows = await conn.execute(
        select(*_COLUMNS)
        .join(users, users.c.id == clients.c.owner_id)
        .where(clients.c.owner_id == owner_id)
        .order_by(clients.c.created_at.desc(), clients.c.id.desc())
    )
    return [_client(r) for r in rows]


async def client_logo(conn: AsyncConnection, client_id: str) -> tuple[bytes, str] | None:
    if "\x00" in client_id:
        return None
    row = (
        await conn.execute(
            select(clients.c.logo, clients.c.logo_mime).where(clients.c.client_id == client_id)
        )
    ).first()
    if row is None or row.logo is None:
        return None
    return bytes(row.logo), str(row.logo_mime)


async def set_secret_hash(conn: AsyncConnection, client_pk: int, secret_hash: str) -> None:
    await conn.execute(
        update(clients).where(clients.c.id == client_pk).values(secret_hash=secret_hash)
    )


async def delete_client(conn: AsyncConnection, client_pk: int) -> None:
    # ON DELETE CASCADE removes its grants, codes and tokens in the same statement.
    await conn.execute(delete(clients).where(clients.c.id == client_pk))
