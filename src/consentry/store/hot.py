"""The request hot path's queries: plain synchronous functions of a SQLAlchemy ``Connection``.

They run inside ``Database.run_read`` / ``Database.run_write`` (on SQLite directly on a
pysqlite connection, on PostgreSQL through ``AsyncConnection.run_sync``), or from async code
through ``await conn.run_sync(fn, ...)``. Every statement is built once, at import, with
named bind parameters, so SQLAlchemy's cache key is memoized on the statement and each call
is a compiled-cache hit.

Spending is always one conditional statement (``UPDATE ... WHERE spent_at IS NULL ...
RETURNING``): of many concurrent spenders of one code or refresh token, the database lets
exactly one see a row. Everything is keyed by the value's keyed hash; no plaintext here.
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from consentry.store.models import (
    access_tokens,
    clients,
    codes,
    grants,
    refresh_tokens,
    users,
)

# --- prepared statements -----------------------------------------------------------------------


class Prepared:
    """A Core statement compiled once per dialect.

    On SQLite it is executed straight on the pysqlite connection under the SQLAlchemy
    ``Connection`` (same transaction): the compiled SQL string and its parameter order are
    kept, so a call is one ``sqlite3`` execute and a namedtuple per row, without SQLAlchemy's
    per-execution work (cache lookup, execution context, result processing). On any other
    dialect (PostgreSQL via asyncpg) it is ``conn.execute(stmt, params)``: identical SQL,
    SQLAlchemy's compiled cache. Rows support attribute and index access either way."""

    __slots__ = ("stmt", "_sql", "_order", "_row")

    def __init__(self, stmt: Any) -> None:
        self.stmt = stmt
        self._sql: str | None = None
        self._order: tuple[str, ...] = ()
        self._row: Any = None

    def _sqlite(self, conn: Connection, params: dict[str, Any]) -> Any:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        if self._sql is None:
            compiled = self.stmt.compile(dialect=conn.dialect)
            self._order = tuple(compiled.positiontup or ())
            self._sql = compiled.string
        return raw.execute(self._sql, [params[n] for n in self._order])

    def all(self, conn: Connection, params: dict[str, Any]) -> list[Any]:
        if conn.dialect.name != "sqlite":
            return list(conn.execute(self.stmt, params).all())
        cur = self._sqlite(conn, params)
        rows = cur.fetchall()
        row = self._row
        if row is None:
            names = [d[0] for d in cur.description]
            row = self._row = namedtuple("Row", names, rename=True)._make  # type: ignore[attr-defined]
        return [row(r) for r in rows]

    def first(self, conn: Connection, params: dict[str, Any]) -> Any:
        rows = self.all(conn, params)
        return rows[0] if rows else None

    def run(self, conn: Connection, params: dict[str, Any]) -> None:
        """Execute a statement without result rows (INSERT, UPDATE without RETURNING)."""
        if conn.dialect.name != "sqlite":
            conn.execute(self.stmt, params)
            return
        self._sqlite(conn, params).close()


# --- clients ---------------------------------------------------------------------------------


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


CLIENT_COLUMNS = (
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


def client_from_row(r: Any) -> Client:
    """A ``Client`` from a row of ``CLIENT_COLUMNS`` (in that order)."""
    return Client(
        id=r[0],
        client_id=r[1],
        secret_hash=r[2],
        owner_id=r[3],
        name=r[4],
        description=r[5],
        redirect_uris=tuple(json.loads(r[6])),
        is_resource_server=bool(r[7]),
        allow_implicit=bool(r[8]),
        has_logo=bool(r[9]),
        created_at=r[10],
        owner_email=r[11],
        owner_name=r[12],
        owner_max_domain=r[13],
    )


_CLIENT_BY_ID = Prepared(
    
        select(*CLIENT_COLUMNS)
        .join(users, users.c.id == clients.c.owner_id)
        .where(clients.c.client_id == bindparam("p_client_id"))
    
)


def client_by_client_id(conn: Connection, client_id: str) -> Client | None:
    if "\x00" in client_id:  # from a URL path ("%00"); PostgreSQL text cannot hold NUL
        return None
    row = _CLIENT_BY_ID.first(conn, {"p_client_id": client_id})
    return client_from_row(row) if row is not None else None


# --- grants ----------------------------------------------------------------------------------

_TOUCH_GRANT = Prepared(
    
        update(grants)
        .where(grants.c.id == bindparam("p_id"), grants.c.revoked_at.is_(None))
        .values(last_used_at=bindparam("p_now"))
        .returning(grants.c.id)
    
)


def touch_live_grant(conn: Connection, grant_id: int, now: int) -> bool:
    """Mark the grant used; False if it was revoked. Also row-locks it against a racing
    revocation, so tokens are never minted into a grant that is being revoked."""
    return _TOUCH_GRANT.first(conn, {"p_id": grant_id, "p_now": now}) is not None


_REVOKE_GRANTS = (
    update(grants)
    .where(grants.c.id.in_(bindparam("p_ids", expanding=True)), grants.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("p_now"))
)
_REVOKE_GRANT_TOKENS = (
    update(access_tokens)
    .where(
        access_tokens.c.grant_id.in_(bindparam("p_ids", expanding=True)),
        access_tokens.c.revoked_at.is_(None),
    )
    .values(revoked_at=bindparam("p_now"))
)


def revoke_grants(conn: Connection, grant_ids: Sequence[int], now: int) -> None:
    """End grants and every token descended from them (RFC 6749 §4.1.2, §10.4; RFC 7009 §2.1).

    Lock order is grants, then access tokens; refresh-token rows are never locked here (a
    refresh token is live only while its grant is), because a refresh locks its token row
    before the grant row and the opposite order here would deadlock on PostgreSQL."""
    if not grant_ids:
        return
    params = {"p_ids": list(grant_ids), "p_now": now}
    conn.execute(_REVOKE_GRANTS, params)
    conn.execute(_REVOKE_GRANT_TOKENS, params)


# --- codes -----------------------------------------------------------------------------------

_SPEND_CODE = Prepared(
    
        update(codes)
        .where(
            codes.c.code_hash == bindparam("p_hash"),
            codes.c.client_pk == bindparam("p_client"),
            codes.c.spent_at.is_(None),
        )
        .values(spent_at=bindparam("p_now"))
        .returning(*codes.c)
    
)


def spend_code(conn: Connection, code_hash: str, client_pk: int, now: int) -> Any:
    """Spend a code of this client: the one winner of any race gets its row, others None.

    Bound to the client in the WHERE clause so another client holding a stolen code cannot
    even burn it (RFC 6749 §4.1.3)."""
    return _SPEND_CODE.first(conn, {"p_hash": code_hash, "p_client": client_pk, "p_now": now})


_CODE_BY_HASH = Prepared(
    select(codes).where(codes.c.code_hash == bindparam("p_hash"))
)


def code_by_hash(conn: Connection, code_hash: str) -> Any:
    return _CODE_BY_HASH.first(conn, {"p_hash": code_hash})


# --- access and refresh tokens -----------------------------------------------------------------

_INSERT_ACCESS = Prepared(
    access_tokens.insert().values(
        token_hash=bindparam("p_token_hash"),
        client_pk=bindparam("p_client_pk"),
        user_id=bindparam("p_user_id"),
        grant_id=bindparam("p_grant_id"),
        scope=bindparam("p_scope"),
        expires_at=bindparam("p_expires_at"),
    )
)
_INSERT_REFRESH = Prepared(
    refresh_tokens.insert().values(
        token_hash=bindparam("p_token_hash"),
        client_pk=bindparam("p_client_pk"),
        user_id=bindparam("p_user_id"),
        grant_id=bindparam("p_grant_id"),
        scope=bindparam("p_scope"),
        expires_at=bindparam("p_expires_at"),
    )
)


def insert_access_token(
    conn: Connection,
    *,
    token_hash: str,
    client_pk: int,
    user_id: int,
    grant_id: int | None,
    scope: str | None,
    expires_at: int,
) -> None:
    _INSERT_ACCESS.run(
        conn,
        {
            "p_token_hash": token_hash,
            "p_client_pk": client_pk,
            "p_user_id": user_id,
            "p_grant_id": grant_id,
            "p_scope": scope,
            "p_expires_at": expires_at,
        },
    )


def insert_refresh_token(
    conn: Connection,
    *,
    token_hash: str,
    client_pk: int,
    user_id: int,
    grant_id: int,
    scope: str | None,
    expires_at: int,
) -> None:
    _INSERT_REFRESH.run(
        conn,
        {
            "p_token_hash": token_hash,
            "p_client_pk": client_pk,
            "p_user_id": user_id,
            "p_grant_id": grant_id,
            "p_scope": scope,
            "p_expires_at": expires_at,
        },
    )


_SPEND_REFRESH = Prepared(
    
        update(refresh_tokens)
        .where(
            refresh_tokens.c.token_hash == bindparam("p_hash"),
            refresh_tokens.c.client_pk == bindparam("p_client"),
            refresh_tokens.c.spent_at.is_(None),
            refresh_tokens.c.expires_at > bindparam("p_now"),
        )
        .values(
            spent_at=bindparam("p_now"),
            retry_blob=bindparam("p_blob"),
            successor_hash=bindparam("p_successor"),
        )
        .returning(
            refresh_tokens.c.id,
            refresh_tokens.c.grant_id,
            refresh_tokens.c.user_id,
            refresh_tokens.c.scope,
            refresh_tokens.c.expires_at,
        )
    
)


def spend_refresh_token(
    conn: Connection,
    token_hash: str,
    client_pk: int,
    now: int,
    *,
    retry_blob: bytes | None,
    successor_hash: str,
) -> Any:
    """Rotate: spend a live refresh token of this client in one statement (RFC 9700 §4.14.2)."""
    return _SPEND_REFRESH.first(
        conn,
        {
            "p_hash": token_hash,
            "p_client": client_pk,
            "p_now": now,
            "p_blob": retry_blob,
            "p_successor": successor_hash,
        },
    )


_REFRESH_BY_HASH = Prepared(
    
        select(refresh_tokens, grants.c.revoked_at.label("grant_revoked_at"))
        .join(grants, grants.c.id == refresh_tokens.c.grant_id)
        .where(refresh_tokens.c.token_hash == bindparam("p_hash"))
    
)


def refresh_token_by_hash(conn: Connection, token_hash: str) -> Any:
    """The refresh token's row plus ``grant_revoked_at`` (a refresh token lives with its grant)."""
    return _REFRESH_BY_HASH.first(conn, {"p_hash": token_hash})


_REFRESH_UNSPENT = Prepared(
    
        select(refresh_tokens.c.id)
        .join(grants, grants.c.id == refresh_tokens.c.grant_id)
        .where(
            refresh_tokens.c.token_hash == bindparam("p_hash"),
            refresh_tokens.c.spent_at.is_(None),
            grants.c.revoked_at.is_(None),
        )
    
)


def refresh_token_is_unspent(conn: Connection, token_hash: str) -> bool:
    return _REFRESH_UNSPENT.first(conn, {"p_hash": token_hash}) is not None


_REFRESH_NAMES = Prepared(
    
        select(clients.c.client_id, users.c.account_id)
        .select_from(clients)
        .join(users, users.c.id == bindparam("p_user"))
        .where(clients.c.id == bindparam("p_client"))
    
)


def client_and_account_ids(conn: Connection, client_pk: int, user_id: int) -> Any:
    return _REFRESH_NAMES.first(conn, {"p_user": user_id, "p_client": client_pk})


@dataclass(frozen=True, slots=True)
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


_ACCESS_TOKEN = Prepared(
    
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
        .where(access_tokens.c.token_hash == bindparam("p_hash"))
    
)


def access_token(conn: Connection, token_hash: str) -> AccessToken | None:
    """One statement: the token, its owner, its client and whether its grant still lives."""
    r = _ACCESS_TOKEN.first(conn, {"p_hash": token_hash})
    if r is None:
        return None
    return AccessToken(
        id=r[0],
        client_pk=r[1],
        client_id=r[2],
        user_id=r[3],
        account_id=r[4],
        user_max_domain=r[5],
        grant_id=r[6],
        scope=r[7],
        expires_at=r[8],
        revoked=r[9] is not None or r[10] is not None,
    )


_REVOKE_ACCESS = Prepared(
    
        update(access_tokens)
        .where(access_tokens.c.id == bindparam("p_id"), access_tokens.c.revoked_at.is_(None))
        .values(revoked_at=bindparam("p_now"))
    
)


def revoke_access_token(conn: Connection, token_id: int, now: int) -> None:
    _REVOKE_ACCESS.run(conn, {"p_id": token_id, "p_now": now})
