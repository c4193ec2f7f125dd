"""Queries on grants, codes, access and refresh tokens.

Spending is always one conditional statement (``UPDATE ... WHERE spent_at IS NULL ...
RETURNING``): of many concurrent spenders of one code or refresh token, the database lets
exactly one see a row. Everything is keyed by the value's keyed hash; no plaintext here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from consentry.store import hot
from consentry.store.db import Database
from consentry.store.models import (
    access_tokens,
    auth_requests,
    clients,
    codes,
    consents,
    grants,
    refresh_tokens,
    sessions,
    users,
)

# --- grants ------------------------------------------------------------------------------


_INSERT_GRANT = hot.Prepared(
    insert(grants)
    .values(
        user_id=bindparam("p_user"),
        client_pk=bindparam("p_client"),
        scope=bindparam("p_scope"),
        created_at=bindparam("p_now"),
    )
    .returning(grants.c.id)
)


def insert_grant(
    conn: Connection, *, user_id: int, client_pk: int, scope: str | None, now: int
) -> int:
    row = _INSERT_GRANT.first(
        conn, {"p_user": user_id, "p_client": client_pk, "p_scope": scope, "p_now": now}
    )
    return int(row[0])


async def revoke_grants(conn: AsyncConnection, grant_ids: Sequence[int], now: int) -> None:
    """``hot.revoke_grants`` from async code (same statements, same lock order)."""
    await conn.run_sync(hot.revoke_grants, grant_ids, now)


async def live_grant_ids(conn: AsyncConnection, user_id: int, client_pk: int) -> list[int]:
    rows = await conn.execute(
        select(grants.c.id).where(
            grants.c.user_id == user_id,
            grants.c.client_pk == client_pk,
            grants.c.revoked_at.is_(None),
        )
    )
    return [int(r.id) for r in rows]


# --- codes -------------------------------------------------------------------------------


_INSERT_CODE = hot.Prepared(
    insert(codes).values(
        code_hash=bindparam("p_hash"),
        grant_id=bindparam("p_grant"),
        client_pk=bindparam("p_client"),
        user_id=bindparam("p_user"),
        redirect_uri=bindparam("p_redirect"),
        redirect_uri_sent=bindparam("p_redirect_sent"),
        scope=bindparam("p_scope"),
        code_challenge=bindparam("p_challenge"),
        expires_at=bindparam("p_expires"),
    )
)


def add_code(
    conn: Connection,
    *,
    code_hash: str,
    grant_id: int,
    client_pk: int,
    user_id: int,
    redirect_uri: str,
    redirect_uri_sent: bool,
    scope: str | None,
    code_challenge: str | None,
    expires_at: int,
) -> None:
    _INSERT_CODE.run(
        conn,
        {
            "p_hash": code_hash,
            "p_grant": grant_id,
            "p_client": client_pk,
            "p_user": user_id,
            "p_redirect": redirect_uri,
            "p_redirect_sent": redirect_uri_sent,
            "p_scope": scope,
            "p_challenge": code_challenge,
            "p_expires": expires_at,
        },
    )


# --- consent ---------------------------------------------------------------------------------


_CONSENT = hot.Prepared(
    select(consents.c.scope).where(
        consents.c.user_id == bindparam("p_user"), consents.c.client_pk == bindparam("p_client")
    )
)


def consent_of(conn: Connection, user_id: int, client_pk: int) -> tuple[bool, str | None]:
    """(found, scope) of the remembered consent of this user for this client."""
    row = _CONSENT.first(conn, {"p_user": user_id, "p_client": client_pk})
    return (row is not None, row[0] if row is not None else None)


def upsert_consent(
    conn: Connection, user_id: int, client_pk: int, scope: str | None, now: int
) -> None:
    """Upsert in one statement: concurrent authorizations of one user and client must not
    collide on the unique key (a DELETE then INSERT did, on PostgreSQL)."""
    dialect = conn.dialect.name
    upsert_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = upsert_insert(consents).values(
        user_id=user_id, client_pk=client_pk, scope=scope, created_at=now
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[consents.c.user_id, consents.c.client_pk],
            set_={"scope": stmt.excluded.scope, "created_at": stmt.excluded.created_at},
        )
    )


async def forget_consent(conn: AsyncConnection, user_id: int, client_pk: int) -> None:
    await conn.execute(
        delete(consents).where(consents.c.user_id == user_id, consents.c.client_pk == client_pk)
    )


async def connected_apps(conn: AsyncConnection, user_id: int, now: int) -> list[RowMapping]:
    """Applications holding a live grant on this user's account, with first/last use."""
    live_refresh = (
        select(refresh_tokens.c.id)
        .where(
            refresh_tokens.c.grant_id == grants.c.id,
            refresh_tokens.c.spent_at.is_(None),
            refresh_tokens.c.expires_at > now,
        )
        .exists()
    )
    live_access = (
        select(access_tokens.c.id)
        .where(
            access_tokens.c.grant_id == grants.c.id,
            access_tokens.c.revoked_at.is_(None),
            access_tokens.c.expires_at > now,
        )
        .exists()
    )
    rows = await conn.execute(
        select(
            clients.c.client_id,
            clients.c.name,
            clients.c.description,
            (clients.c.logo.is_not(None)).label("has_logo"),
            users.c.name.label("developer_name"),
            users.c.email.label("developer_email"),
            func.min(grants.c.created_at).label("granted_at"),
            func.max(func.coalesce(grants.c.last_used_at, grants.c.created_at)).label(
                "last_used_at"
            ),
            func.max(grants.c.scope).label("scope"),
        )
        .select_from(grants)
        .join(clients, clients.c.id == grants.c.client_pk)
        .join(users, users.c.id == clients.c.owner_id)
        .where(
            grants.c.user_id == user_id,
            grants.c.revoked_at.is_(None),
            or_(live_refresh, live_access),
        )
        .group_by(
            clients.c.client_id,
            clients.c.name,
            clients.c.description,
            clients.c.logo.is_not(None),
            users.c.name,
            users.c.email,
        )
        .order_by(func.max(func.coalesce(grants.c.last_used_at, grants.c.created_at)).desc())
    )
    return list(rows.mappings())


# --- pending authorization requests ---------------------------------------------------------


async def create_auth_request(
    conn: AsyncConnection,
    *,
    request_hash: str,
    client_pk: int,
    user_id: int | None,
    params: str,
    now: int,
    ttl: int,
) -> None:
    await conn.execute(
        insert(auth_requests).values(
            request_hash=request_hash,
            client_pk=client_pk,
            user_id=user_id,
            params=params,
            created_at=now,
            expires_at=now + ttl,
        )
    )


async def auth_request(conn: AsyncConnection, request_hash: str, now: int) -> RowMapping | None:
    return (
        await conn.execute(
            select(auth_requests).where(
                auth_requests.c.request_hash == request_hash,
                auth_requests.c.expires_at > now,
            )
        )
    ).mappings().first()


async def decide_auth_request(
    conn: AsyncConnection, request_hash: str, user_id: int, now: int
) -> RowMapping | None:
    """Consume a consent request once: a double click or a reload finds nothing to decide."""
    result = await conn.execute(
        update(auth_requests)
        .where(
            auth_requests.c.request_hash == request_hash,
            auth_requests.c.user_id == user_id,
            auth_requests.c.decided_at.is_(None),
            auth_requests.c.expires_at > now,
        )
        .values(decided_at=now)
        .returning(*auth_requests.c)
    )
    return result.mappings().first()


# --- purge -----------------------------------------------------------------------------------


def purge_batch(conn: Connection, now: int, batch: int) -> int:
    """Delete one batch of each kind of expired row; returns how many went (0 = done).

    A grant goes with the last of its rows: the deletes return the grant ids they touched,
    and only those grants are checked for rows left (a few index probes each). Scanning
    every grant for orphans instead cost a full pass over the grants table per batch (6 s
    on 6 million grants, holding the write lock). A grant with no rows left can never gain
    one again: tokens are only minted into a grant while spending a code or refresh token
    of it, in the same transaction (or statement), so deleting it races with nothing."""
    total = 0
    touched: set[int] = set()
    for table, cond in (
        (codes, codes.c.expires_at < now),
        (access_tokens, access_tokens.c.expires_at < now),
        (refresh_tokens, refresh_tokens.c.expires_at < now),
        (auth_requests, auth_requests.c.expires_at < now),
        (sessions, sessions.c.expires_at < now),
    ):
        ids = select(table.c.id).where(cond).limit(batch).scalar_subquery()
        stmt = delete(table).where(table.c.id.in_(ids))
        if "grant_id" in table.c:
            rows = conn.execute(stmt.returning(table.c.grant_id)).all()
            total += len(rows)
            touched.update(int(r[0]) for r in rows if r[0] is not None)
        else:
            total += conn.execute(stmt).rowcount or 0
    if touched:
        orphan = and_(
            grants.c.id.in_(sorted(touched)),
            ~select(codes.c.id).where(codes.c.grant_id == grants.c.id).exists(),
            ~select(access_tokens.c.id).where(access_tokens.c.grant_id == grants.c.id).exists(),
            ~select(refresh_tokens.c.id).where(refresh_tokens.c.grant_id == grants.c.id).exists(),
        )
        total += conn.execute(delete(grants).where(orphan)).rowcount or 0
    return total


async def purge_all(db: Database, batch: int) -> int:
    """Purge until nothing expired is left; one short write per batch, so memory and lock
    time stay bounded and an interrupted purge simply resumes next time.

    Each batch is a job of the ordinary write path (on SQLite, the group-commit writer, so
    token requests queue behind at most one batch instead of sleeping in SQLite's busy
    handler), and after each batch the purge pauses as long as the batch took: it uses at
    most about half of the database's write time while requests keep coming."""
    total = 0
    while True:
        started = time.monotonic()
        n = await db.run_write(purge_batch, int(time.time()), batch)
        total += n
        if n == 0:
            return total
        await asyncio.sleep(min(1.0, time.monotonic() - started))
