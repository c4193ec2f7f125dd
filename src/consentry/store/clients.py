"""Queries on registered applications (OAuth clients)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from consentry.store.models import clients, users


@dataclass(frozen=True)
class Client:
    id: int
    client_id: str
    secret_hash: str
    owner_id: int
    name: str
    description: str
    redirect_uris: tuple[str, ...]
    is_resource_server: bool
    allow_implicit: bool
    has_logo: bool
    created_at: int
    owner_email: str
    owner_name: str
    owner_max_domain: str | None

    def __repr__(self) -> str:  # never show the secret hash
        return f"Client(client_id={self.client_id!r}, name={self.name!r})"


_COLUMNS = (
    clients.c.id,
    clients.c.client_id,
    clients.c.secret_hash,
    clients.c.owner_id,
    clients.c.name,
    clients.c.description,
    clients.c.redirect_uris,
    clients.c.is_resource_server,
    clients.c.allow_implicit,
    (clients.c.logo.is_not(None)).label("has_logo"),
    clients.c.created_at,
    users.c.email.label("owner_email"),
    users.c.name.label("owner_name"),
    users.c.max_domain.label("owner_max_domain"),
)


def _client(row: object) -> Client:
    m = row._mapping  # type: ignore[attr-defined]
    return Client(
        id=m["id"],
        client_id=m["client_id"],
        secret_hash=m["secret_hash"],
        owner_id=m["owner_id"],
        name=m["name"],
        description=m["description"],
        redirect_uris=tuple(json.loads(m["redirect_uris"])),
        is_resource_server=bool(m["is_resource_server"]),
        allow_implicit=bool(m["allow_implicit"]),
        has_logo=bool(m["has_logo"]),
        created_at=m["created_at"],
        owner_email=m["owner_email"],
        owner_name=m["owner_name"],
        owner_max_domain=m["owner_max_domain"],
    )


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
    if "\x00" in client_id:  # from a URL path ("%00"); PostgreSQL text cannot hold NUL
        return None
    row = (
        await conn.execute(
            select(*_COLUMNS)
            .join(users, users.c.id == clients.c.owner_id)
            .where(clients.c.client_id == client_id)
        )
    ).first()
    return _client(row) if row is not None else None


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
