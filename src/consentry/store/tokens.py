"""Queries on grants, codes, access and refresh tokens.

Spending is always one conditional statement (``UPDATE ... WHERE spent_at IS NULL ...
RETURNING``): of many concurrent spenders of one code or refresh token, the database lets
exactly one see a row. Everything is keyed by the value's keyed hash; no plaintext here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

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


async def create_grant(
    conn: AsyncConnection, *, user_id: int, client_pk: int, scope: str | None, now: int
) -> int:
    result = await conn.execute(
        insert(grants)
        .values(user_id=user_id, client_pk=client_pk, scope=scope, created_at=now)
        .returning(grants.c.id)
    )
    return int(result.scalar_one())


async def touch_live_grant(conn: AsyncConnection, grant_id: int, now: int) -> bool:
    """Mark the grant used; False if it was revoked. Also row-locks it against a racing
    revocation, so tokens are never minted into a grant that is being revoked."""
    result = await conn.execute(
        update(grants)
        .where(grants.c.id == grant_id, grants.c.revoked_at.is_(None))
        .values(last_used_at=now)
        .returning(grants.c.id)
    )
    return result.first() is not None


async def revoke_grants(conn: AsyncConnection, grant_ids: Sequence[int], now: int) -> None:
    """End grants and every token descended from them (RFC 6749 §4.1.2, §10.4; RFC 7009 §2.1).

    Lock order is grants, then access tokens; refresh-token rows are never locked here (a
    refresh token is live only while its grant is), because a refresh locks its token row
    before the grant row and the opposite order here would deadlock on PostgreSQL."""
    if not grant_ids:
        return
    ids = list(grant_ids)
    await conn.execute(
        update(grants)
        .where(grants.c.id.in_(ids), grants.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await conn.execute(
        update(access_tokens)
        .where(access_tokens.c.grant_id.in_(ids), access_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


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


async def insert_code(
    conn: AsyncConnection,
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
    await conn.execute(
        insert(codes).values(
            code_hash=code_hash,
            grant_id=grant_id,
            client_pk=client_pk,
            user_id=user_id,
            redirect_uri=redirect_uri,
            redirect_uri_sent=redirect_uri_sent,
            scope=scope,
            code_challenge=code_challenge,
            expires_at=expires_at,
        )
    )


async def spend_code(
    conn: AsyncConnection, code_hash: str, client_pk: int, now: int
) -> RowMapping | None:
    """Spend a code of this client: the one winner of any race gets its row, others None.

    Bound to the client in the WHERE clause so another client holding a stolen code cannot
    even burn it (RFC 6749 §4.1.3)."""
    result = await conn.execute(
        update(codes)
        .where(
            codes.c.code_hash == code_hash,
            codes.c.client_pk == client_pk,
            codes.c.spent_at.is_(None),
        )
        .values(spent_at=now)
        .returning(*codes.c)
    )
    return result.mappings().first()


async def code_by_hash(conn: AsyncConnection, code_hash: str) -> RowMapping | None:
    return (
        await conn.execute(select(codes).where(codes.c.code_hash == code_hash))
    ).mappings().first()


# --- access and refresh tokens -------------------------------------------------------------


async def insert_access_token(
    conn: AsyncConnection,
    *,
    token_hash: str,
    client_pk: int,
    user_id: int,
    grant_id: int | None,
    scope: str | None,
    expires_at: int,
) -> None:
    await conn.execute(
        insert(access_tokens).values(
            token_hash=token_hash,
            client_pk=client_pk,
            user_id=user_id,
            grant_id=grant_id,
            scope=scope,
            expires_at=expires_at,
        )
    )


async def insert_refresh_token(
    conn: AsyncConnection,
    *,
    token_hash: str,
    client_pk: int,
    user_id: int,
    grant_id: int,
    scope: str | None,
    expires_at: int,
) -> None:
    await conn.execute(
        insert(refresh_tokens).values(
            token_hash=token_hash,
            client_pk=client_pk,
            user_id=user_id,
            grant_id=grant_id,
            scope=scope,
            expires_at=expires_at,
        )
    )


async def spend_refresh_token(
    conn: AsyncConnection,
    token_hash: str,
    client_pk: int,
    now: int,
    *,
    retry_blob: bytes | None,
    successor_hash: str,
) -> RowMapping | None:
    """Rotate: spend a live refresh token of this client in one statement (RFC 9700 §4.14.2)."""
    result = await conn.execute(
        update(refresh_tokens)
        .where(
            refresh_tokens.c.token_hash == token_hash,
            refresh_tokens.c.client_pk == client_pk,
            refresh_tokens.c.spent_at.is_(None),
            refresh_tokens.c.expires_at > now,
        )
        .values(spent_at=now, retry_blob=retry_blob, successor_hash=successor_hash)
        .returning(
            refresh_tokens.c.id,
            refresh_tokens.c.grant_id,
            refresh_tokens.c.user_id,
            refresh_tokens.c.scope,
            refresh_tokens.c.expires_at,
        )
    )
    return result.mappings().first()


async def refresh_token_by_hash(conn: AsyncConnection, token_hash: str) -> RowMapping | None:
    """The refresh token's row plus ``grant_revoked_at`` (a refresh token lives with its grant)."""
    return (
        await conn.execute(
            select(refresh_tokens, grants.c.revoked_at.label("grant_revoked_at"))
            .join(grants, grants.c.id == refresh_tokens.c.grant_id)
            .where(refresh_tokens.c.token_hash == token_hash)
        )
    ).mappings().first()


async def refresh_token_is_unspent(conn: AsyncConnection, token_hash: str) -> bool:
    row = (
        await conn.execute(
            select(refresh_tokens.c.id)
            .join(grants, grants.c.id == refresh_tokens.c.grant_id)
            .where(
                refresh_tokens.c.token_hash == token_hash,
                refresh_tokens.c.spent_at.is_(None),
                grants.c.revoked_at.is_(None),
            )
        )
    ).first()
    return row is not None


@dataclass(frozen=True)
class AccessToken:
    """What a bearer check or an introspection needs to know about a presented token."""

    id: int
    client_pk: int
    client_id: str
    user_id: int
    account_id: str
    user_max_domain: str | None
    grant_id: int | None
    scope: str | None
    expires_at: int
    revoked: bool


async def access_token(conn: AsyncConnection, token_hash: str) -> AccessToken | None:
    """One round trip: the token, its owner, its client and whether its grant still lives."""
    row = (
        await conn.execute(
            select(
                access_tokens.c.id,
                access_tokens.c.client_pk,
                clients.c.client_id,
                access_tokens.c.user_id,
                users.c.account_id,
                users.c.max_domain,
                access_tokens.c.grant_id,
                access_tokens.c.scope,
                access_tokens.c.expires_at,
                access_tokens.c.revoked_at,
                grants.c.revoked_at.label("grant_revoked_at"),
            )
            .join(clients, clients.c.id == access_tokens.c.client_pk)
            .join(users, users.c.id == access_tokens.c.user_id)
            .outerjoin(grants, grants.c.id == access_tokens.c.grant_id)
            .where(access_tokens.c.token_hash == token_hash)
        )
    ).first()
    if row is None:
        return None
    return AccessToken(
        id=row.id,
        client_pk=row.client_pk,
        client_id=row.client_id,
        user_id=row.user_id,
        account_id=row.account_id,
        user_max_domain=row.max_domain,
        grant_id=row.grant_id,
        scope=row.scope,
        expires_at=row.expires_at,
        revoked=row.revoked_at is not None or row.grant_revoked_at is not None,
    )


async def revoke_access_token(conn: AsyncConnection, token_id: int, now: int) -> None:
    await conn.execute(
        update(access_tokens)
        .where(access_tokens.c.id == token_id, access_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


# --- consent ---------------------------------------------------------------------------------


async def consent_scope(
    conn: AsyncConnection, user_id: int, client_pk: int
) -> tuple[bool, str | None]:
    """(found, scope) of the remembered consent of this user for this client."""
    row = (
        await conn.execute(
            select(consents.c.scope).where(
                consents.c.user_id == user_id, consents.c.client_pk == client_pk
            )
        )
    ).first()
    return (row is not None, row.scope if row is not None else None)


async def remember_consent(
    conn: AsyncConnection, user_id: int, client_pk: int, scope: str | None, now: int
) -> None:
    """Upsert in one statement: concurrent authorizations of one user and client must not
    collide on the unique key (a DELETE then INSERT did, on PostgreSQL)."""
    dialect = conn.dialect.name
    upsert_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = upsert_insert(consents).values(
        user_id=user_id, client_pk=client_pk, scope=scope, created_at=now
    )
    await conn.execute(
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


async def purge_expired(conn: AsyncConnection, now: int, batch: int = 5000) -> int:
    """Delete one batch of each kind of expired row; returns how many went (0 = done)."""
    total = 0
    for table, cond in (
        (codes, codes.c.expires_at < now),
        (access_tokens, access_tokens.c.expires_at < now),
        (refresh_tokens, refresh_tokens.c.expires_at < now),
        (auth_requests, auth_requests.c.expires_at < now),
        (sessions, sessions.c.expires_at < now),
    ):
        ids = select(table.c.id).where(cond).limit(batch).scalar_subquery()
        result = await conn.execute(delete(table).where(table.c.id.in_(ids)))
        total += result.rowcount or 0
    # A grant whose every token and code is gone (expired or revoked) is history.
    orphan = (
        select(grants.c.id)
        .where(
            ~select(codes.c.id).where(codes.c.grant_id == grants.c.id).exists(),
            ~select(access_tokens.c.id).where(access_tokens.c.grant_id == grants.c.id).exists(),
            ~select(refresh_tokens.c.id).where(refresh_tokens.c.grant_id == grants.c.id).exists(),
            grants.c.created_at < now - 3600,
        )
        .limit(batch)
        .scalar_subquery()
    )
    result = await conn.execute(delete(grants).where(and_(grants.c.id.in_(orphan))))
    total += result.rowcount or 0
    return total


async def purge_all(db: Database, batch: int) -> int:
    """Purge until nothing expired is left; one short transaction per batch, so memory and
    lock time stay bounded and an interrupted purge simply resumes next time."""
    total = 0
    while True:
        async with db.write() as conn:
            n = await purge_expired(conn, int(time.time()), batch)
        total += n
        if n == 0:
            return total
        await asyncio.sleep(0)  # let requests in between batches
