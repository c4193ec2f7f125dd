"""The request hot path's queries: plain synchronous functions of a SQLAlchemy ``Connection``.

They run inside ``Database.run_read`` / ``Database.run_write`` (on SQLite directly on a
pysqlite connection, on PostgreSQL through ``AsyncConnection.run_sync``), or from async code
through ``await conn.run_sync(fn, ...)``. Every statement is built once, at import, with
named bind parameters, so SQLAlchemy's cache key is memoized on the statement and each call
is a compiled-cache hit.

Spending is always one conditional statement (``UPDATE ... WHERE spent_at IS NULL ...
RETURNING``): of many concurrent spenders of one code or refresh token, the database lets
exactly one see a row. Everything is keyed by the value's keyed hash; no plaintext here.

An access or refresh token has two forms of its hash (``TokenHashes``, from
``Keyring.token_hashes``): the located one every token issued now is stored under, and the
plain HMAC of tokens stored before (so an upgrade keeps them working). A read looks the
located one up first, and the plain one only if that found nothing (``located_first``): a
token issued now costs one probe of one index, as before located hashes; only an unknown
value, or a token stored by an earlier release, is looked up twice (on PostgreSQL a second
round trip in the same job). At most one form can match.
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, NamedTuple, NoReturn, TypeVar

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.engine import Connection

from consentry.store.models import (
    access_tokens,
    clients,
    codes,
    grants,
    refresh_tokens,
    users,
)
from consentry.store.pghot import HotConnection

# (the stored hash, the hash a token issued before located hashes was stored under)
TokenHashes = tuple[str, str]
_T = TypeVar("_T")


def _hash_is(column: Any, name: str) -> Any:
    """``column`` holds the hash bound as ``name`` (one form of ``TokenHashes``: the reads
    try the located one, then the plain one, ``located_first``)."""
    return column == bindparam(name, type_=String)


def _is_none(got: Any) -> bool:
    return got is None


def located_first(
    read: Callable[[str], _T], hashes: TokenHashes, missed: Callable[[_T], bool]
) -> _T:
    """``read(located hash)``, or, if ``missed`` says it found no token, ``read(plain
    HMAC)``: the second read only where the two forms differ (a 40-hex value)."""
    got = read(hashes[0])
    if missed(got) and hashes[1] != hashes[0]:
        return read(hashes[1])
    return got


# --- prepared statements -----------------------------------------------------------------------


# (SQL, positional parameter names, values of the binds the statement carries itself)
_Compiled = tuple[str, tuple[str, ...], dict[str, Any]]


def _raise_wrapped(
    conn: Connection, exc: Exception, sql: str, values: list[Any], cursor: Any
) -> NoReturn:
    """A DBAPI error as ``conn.execute`` raises it: through SQLAlchemy's own handling
    (semi-private, stable since 1.4), so it arrives wrapped (``IntegrityError``,
    ``OperationalError``, ...; the 503 handler knows those) and a lost connection is
    invalidated."""
    conn._handle_dbapi_exception(exc, sql, values, cursor, None)


class Prepared:
    """A Core statement compiled once per dialect and run on the DBAPI cursor.

    On SQLite it is executed straight on the pysqlite connection under the SQLAlchemy
    ``Connection`` (same transaction). On PostgreSQL it is executed on the cursor of
    SQLAlchemy's asyncpg adapter under that ``Connection`` — inside ``run_sync``'s greenlet,
    so the adapter awaits asyncpg as it always does, in the same transaction (or autocommit)
    and with asyncpg's prepared-statement cache of that connection. Either way a call is one
    execute and a namedtuple per row, without SQLAlchemy's per-execution work (cache lookup,
    execution context, result processing): a fifth of a bearer GET's CPU on PostgreSQL. The
    columns here need no result processing (integers, strings, booleans, bytes), and a
    driver error goes through SQLAlchemy's own handling, so it arrives wrapped as with
    ``conn.execute`` (``IntegrityError``, ``OperationalError``, ...) and a lost connection
    is invalidated. Rows support attribute and index access."""

    __slots__ = ("stmt", "_compiled", "_row")

    def __init__(self, stmt: Any) -> None:
        self.stmt = stmt
        self._compiled: dict[str, _Compiled] = {}  # by dialect name
        self._row: Any = None

    def _bound(
        self, conn: Connection | HotConnection, dialect: str, params: dict[str, Any]
    ) -> tuple[str, list[Any]]:
        """The statement's SQL for ``dialect`` and its parameters in positional order."""
        got = self._compiled.get(dialect)
        if got is None:
            compiled = self.stmt.compile(dialect=conn.dialect)
            order = tuple(compiled.positiontup or ())
            # Binds the statement carries its own value for (``col * 2``): merged in per call.
            fixed = {n: compiled.binds[n].value for n in order if not compiled.binds[n].required}
            got = self._compiled[dialect] = (compiled.string, order, fixed)
        sql, order, fixed = got
        if fixed:
            params = fixed | params
        return sql, [params[n] for n in order]

    def _sqlite(self, conn: Connection, params: dict[str, Any]) -> Any:
        sql, values = self._bound(conn, "sqlite", params)
        raw = conn.connection.dbapi_connection
        assert raw is not None
        try:
            return raw.execute(sql, values)
        except Exception as exc:
            _raise_wrapped(conn, exc, sql, values, None)

    def _postgresql(self, conn: Connection, params: dict[str, Any]) -> Any:
        sql, values = self._bound(conn, "postgresql", params)
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            cursor.execute(sql, values)
        except Exception as exc:
            _raise_wrapped(conn, exc, sql, values, cursor)
        return cursor

    def _rows(self, cursor: Any) -> list[Any]:
        description = cursor.description
        if not description:
            return []
        row = self._row
        if row is None:
            names = [d[0] for d in description]
            row = self._row = namedtuple("Row", names, rename=True)._make  # type: ignore[attr-defined]
        return [row(r) for r in cursor.fetchall()]

    def _hot(self, conn: HotConnection, params: dict[str, Any]) -> list[Any]:
        sql, values = self._bound(conn, "postgresql", params)
        records = conn.fetch(sql, values)
        if not records:
            return []
        row = self._row
        if row is None:
            row = self._row = namedtuple("Row", list(records[0].keys()), rename=True)._make  # type: ignore[attr-defined]
        return [row(r) for r in records]

    def all(self, conn: Connection | HotConnection, params: dict[str, Any]) -> list[Any]:
        if isinstance(conn, HotConnection):  # PostgreSQL's hot path (store/pghot.py)
            return self._hot(conn, params)
        name = conn.dialect.name
        if name == "sqlite":
            return self._rows(self._sqlite(conn, params))
        if name == "postgresql":
            return self._rows(self._postgresql(conn, params))
        return list(conn.execute(self.stmt, params).all())

    def first(self, conn: Connection | HotConnection, params: dict[str, Any]) -> Any:
        rows = self.all(conn, params)
        return rows[0] if rows else None

    def run(self, conn: Connection | HotConnection, params: dict[str, Any]) -> None:
        """Execute a statement without result rows (INSERT, UPDATE without RETURNING)."""
        if isinstance(conn, HotConnection):
            self._hot(conn, params)
            return
        name = conn.dialect.name
        if name == "sqlite":
            self._sqlite(conn, params).close()
        elif name == "postgresql":
            self._postgresql(conn, params).close()
        else:
            conn.execute(self.stmt, params)


# --- clients ---------------------------------------------------------------------------------


class Client(NamedTuple):
    """A client as the hot path reads it (a named tuple: one is made per token request)."""

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
        r[0],  # id
        r[1],  # client_id
        r[2],  # secret_hash
        r[3],  # owner_id
        r[4],  # name
        r[5],  # description
        _redirect_uris(r[6]),
        bool(r[7]),  # is_resource_server
        bool(r[8]),  # allow_implicit
        bool(r[9]),  # has_logo
        r[10],  # created_at
        r[11],  # owner_email
        r[12],  # owner_name
        r[13],  # owner_max_domain
    )


@lru_cache(maxsize=1024)
def _redirect_uris(stored: str) -> tuple[str, ...]:
    # Every token request reads its client: the same few JSON lists, parsed once each.
    return tuple(json.loads(stored))


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


# Client authentication plus the row the request is about, in ONE statement: the client (and
# its owner) LEFT JOINed with the presented code or refresh token. The token endpoint reads
# both before it writes anything (docs/architecture.md, "Spending without a transaction").
_N_CLIENT = len(CLIENT_COLUMNS)


def _client_plus(columns: Sequence[Any], joined: Any) -> Prepared:
    return Prepared(
        select(*CLIENT_COLUMNS, *columns)
        .select_from(joined)
        .where(clients.c.client_id == bindparam("p_client_id"))
    )


def _client_and_row(
    conn: Connection,
    stmt: Prepared,
    client_id: str,
    params: dict[str, Any],
    make: Callable[[Sequence[Any]], Any],
) -> tuple[Client | None, Any]:
    if "\x00" in client_id:
        return None, None
    r = stmt.first(conn, {"p_client_id": client_id, **params})
    if r is None:
        return None, None
    extra = tuple(r[_N_CLIENT:])
    return client_from_row(r), (make(extra) if extra[0] is not None else None)


def _client_and_token(
    conn: Connection,
    stmt: Prepared,
    client_id: str,
    hashes: TokenHashes,
    make: Callable[[Sequence[Any]], Any],
) -> tuple[Client | None, Any]:
    """``_client_and_row`` for a token (``stmt`` binds ``p_hash``), located hash first; an
    unknown client is not read again."""
    return located_first(
        lambda h: _client_and_row(conn, stmt, client_id, {"p_hash": h}, make),
        hashes,
        lambda got: got[0] is not None and got[1] is None,
    )


CodeRow = namedtuple(
    "CodeRow",
    "id grant_id user_id redirect_uri redirect_uri_sent scope code_challenge expires_at"
    " spent_at grant_revoked_at",
)
_CLIENT_AND_CODE = _client_plus(
    (
        codes.c.id,
        codes.c.grant_id,
        codes.c.user_id,
        codes.c.redirect_uri,
        codes.c.redirect_uri_sent,
        codes.c.scope,
        codes.c.code_challenge,
        codes.c.expires_at,
        codes.c.spent_at,
        grants.c.revoked_at,
    ),
    clients.join(users, users.c.id == clients.c.owner_id)
    .outerjoin(
        codes,
        and_(codes.c.code_hash == bindparam("p_hash"), codes.c.client_pk == clients.c.id),
    )
    .outerjoin(grants, grants.c.id == codes.c.grant_id),
)


def client_and_code(
    conn: Connection, client_id: str, code_hash: str
) -> tuple[Client | None, CodeRow | None]:
    """The client, and the code with this hash if it was issued to that client (with its
    grant's ``revoked_at``): one statement."""
    return _client_and_row(conn, _CLIENT_AND_CODE, client_id, {"p_hash": code_hash}, CodeRow._make)


RefreshRow = namedtuple(
    "RefreshRow",
    "id client_pk grant_id user_id scope expires_at spent_at retry_blob successor_hash"
    " grant_revoked_at successor_id successor_spent_at token_hash",
)
_successor = refresh_tokens.alias("successor")
_CLIENT_AND_REFRESH = _client_plus(
    (
        refresh_tokens.c.id,
        refresh_tokens.c.client_pk,
        refresh_tokens.c.grant_id,
        refresh_tokens.c.user_id,
        refresh_tokens.c.scope,
        refresh_tokens.c.expires_at,
        refresh_tokens.c.spent_at,
        refresh_tokens.c.retry_blob,
        refresh_tokens.c.successor_hash,
        grants.c.revoked_at,
        _successor.c.id,
        _successor.c.spent_at,
        refresh_tokens.c.token_hash,
    ),
    clients.join(users, users.c.id == clients.c.owner_id)
    .outerjoin(
        refresh_tokens,
        and_(
            _hash_is(refresh_tokens.c.token_hash, "p_hash"),
            refresh_tokens.c.client_pk == clients.c.id,
        ),
    )
    .outerjoin(grants, grants.c.id == refresh_tokens.c.grant_id)
    .outerjoin(_successor, _successor.c.token_hash == refresh_tokens.c.successor_hash),
)


def client_and_refresh_token(
    conn: Connection, client_id: str, hashes: TokenHashes
) -> tuple[Client | None, RefreshRow | None]:
    """The client, and the refresh token with this hash if it was issued to that client:
    its row (``token_hash``: the form it is stored under, for the spend), its grant's
    ``revoked_at``, and its successor's id and ``spent_at`` (the grace-window retry needs
    them). One statement (two for a token stored by an earlier release)."""
    return _client_and_token(conn, _CLIENT_AND_REFRESH, client_id, hashes, RefreshRow._make)


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

# The code row its read found (SQLite finds it by rowid; the hash makes sure it is still that
# code even if the row was purged and its id given to a new one), still this client's and
# unspent.
_CODE_SPENDABLE = (
    codes.c.id == bindparam("p_spent", type_=Integer),
    codes.c.code_hash == bindparam("p_hash", type_=String),
    codes.c.client_pk == bindparam("p_client"),
    codes.c.spent_at.is_(None),
)

_SPEND_CODE = Prepared(
    update(codes)
    .where(*_CODE_SPENDABLE)
    .values(spent_at=bindparam("p_now"))
    .returning(codes.c.id)
)


def spend_code(conn: Connection, code_id: int, code_hash: str, client_pk: int, now: int) -> Any:
    """Spend a code of this client: the one winner of any race gets a row, others None.

    Bound to the client in the WHERE clause so another client holding a stolen code cannot
    even burn it (RFC 6749 §4.1.3)."""
    return _SPEND_CODE.first(
        conn, {"p_spent": code_id, "p_hash": code_hash, "p_client": client_pk, "p_now": now}
    )


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


# A refresh token this request may spend: the row its read found (SQLite finds it by rowid;
# the hash, the form the read found it under, makes sure it is still that token even if the
# row was purged and its id given to a new one), still this client's, unspent, unexpired.
# The SQLite spend and PostgreSQL's one-statement rotation both start from these.
_REFRESH_SPENDABLE = (
    refresh_tokens.c.id == bindparam("p_spent", type_=Integer),
    _hash_is(refresh_tokens.c.token_hash, "p_hash"),
    refresh_tokens.c.client_pk == bindparam("p_client"),
    refresh_tokens.c.spent_at.is_(None),
    refresh_tokens.c.expires_at > bindparam("p_now"),
)

_SPEND_REFRESH = Prepared(
    update(refresh_tokens)
    .where(*_REFRESH_SPENDABLE)
    .values(
        spent_at=bindparam("p_now"),
        retry_blob=bindparam("p_blob"),
        successor_hash=bindparam("p_successor"),
    )
    .returning(refresh_tokens.c.id)
)


def spend_refresh_token(
    conn: Connection,
    token_id: int,
    token_hash: str,
    client_pk: int,
    now: int,
    *,
    retry_blob: bytes | None,
    successor_hash: str,
) -> Any:
    """Rotate: spend a live refresh token of this client in one statement (RFC 9700 §4.14.2).
    ``token_id`` and ``token_hash``: its row and stored hash, as its read found them. A row
    (its id) for the one winner of any race, None for the others."""
    return _SPEND_REFRESH.first(
        conn,
        {
            "p_spent": token_id,
            "p_hash": token_hash,
            "p_client": client_pk,
            "p_now": now,
            "p_blob": retry_blob,
            "p_successor": successor_hash,
        },
    )


# --- spending and minting in one statement (PostgreSQL) ------------------------------------
#
# A single statement is atomic without BEGIN/COMMIT, so on PostgreSQL the spend, the grant
# touch and the inserts are one statement of data-modifying CTEs, run in autocommit
# (``Database.run_single_write``): one round trip. Conditions chain, so nothing is inserted
# unless this statement both spent the code or token and found the grant live:
#
#   spent   UPDATE codes|refresh_tokens ... WHERE <unspent, this client, grant live>
#           RETURNING id                    -- locks the code / token row (the winner only)
#   touched UPDATE grants ... WHERE id = :grant AND revoked_at IS NULL
#           AND EXISTS (SELECT FROM spent)  -- an InitPlan: runs after the spend, and only a
#           RETURNING id                    -- winner locks the grant (token row, then grant)
#   INSERT access_tokens / refresh_tokens SELECT :values FROM touched
#   SELECT count(spent), count(touched)
#
# Lock order is unchanged (token or code row, then grant row, then inserts; a revocation
# locks grant then access tokens), and a loser of a spending race locks nothing further and
# its statement (its transaction) has ended before the request looks at the row again.

_grant_live = grants.alias("grant_live")


def _grant_is_live(grant_id: Any) -> Any:
    return (
        select(literal_column("1"))
        .where(_grant_live.c.id == grant_id, _grant_live.c.revoked_at.is_(None))
        .exists()
    )


def _mint_after(spend: Any) -> Prepared:
    spent = spend.cte("spent")
    touched = (
        update(grants)
        .where(
            grants.c.id == bindparam("p_grant", type_=Integer),
            grants.c.revoked_at.is_(None),
            select(literal_column("1")).select_from(spent).exists(),
        )
        .values(last_used_at=bindparam("p_now", type_=BigInteger))
        .returning(grants.c.id)
        .cte("touched")
    )

    def minted(table: Any, hash_param: str, expires_param: str, name: str) -> Any:
        return (
            insert(table)
            .from_select(
                ["token_hash", "client_pk", "user_id", "grant_id", "scope", "expires_at"],
                select(
                    bindparam(hash_param, type_=String),
                    bindparam("p_client", type_=Integer),
                    bindparam("p_user", type_=Integer),
                    touched.c.id,
                    bindparam("p_scope", type_=Text),
                    bindparam(expires_param, type_=BigInteger),
                ),
            )
            .cte(name)
        )

    return Prepared(
        select(
            select(func.count()).select_from(spent).scalar_subquery().label("spent"),
            select(func.count()).select_from(touched).scalar_subquery().label("touched"),
        ).add_cte(
            minted(access_tokens, "p_access_hash", "p_access_exp", "minted_access"),
            minted(refresh_tokens, "p_refresh_hash", "p_refresh_exp", "minted_refresh"),
        )
    )


_REDEEM_CODE_PG = _mint_after(
    update(codes)
    .where(*_CODE_SPENDABLE, _grant_is_live(codes.c.grant_id))
    .values(spent_at=bindparam("p_now"))
    .returning(codes.c.id)
)

_ROTATE_REFRESH_PG = _mint_after(
    update(refresh_tokens)
    .where(*_REFRESH_SPENDABLE, _grant_is_live(refresh_tokens.c.grant_id))
    .values(
        spent_at=bindparam("p_now"),
        retry_blob=bindparam("p_blob"),
        successor_hash=bindparam("p_refresh_hash"),
    )
    .returning(refresh_tokens.c.id)
)


def _mint_params(
    spent: int,
    client_pk: int,
    user_id: int,
    grant_id: int,
    scope: str | None,
    now: int,
    access_hash: str,
    access_expires_at: int,
    refresh_hash: str,
    refresh_expires_at: int,
) -> dict[str, Any]:
    return {
        "p_spent": spent,
        "p_client": client_pk,
        "p_user": user_id,
        "p_grant": grant_id,
        "p_scope": scope,
        "p_now": now,
        "p_access_hash": access_hash,
        "p_access_exp": access_expires_at,
        "p_refresh_hash": refresh_hash,
        "p_refresh_exp": refresh_expires_at,
    }


def redeem_code_in_one_statement(
    conn: Connection, *args: Any, code_hash: str
) -> tuple[bool, bool]:
    """PostgreSQL: spend the code, touch the grant, insert the pair; (spent, minted).

    Arguments as ``_mint_params``: the code's row id (as its read found it), then the pair's
    owner and values."""
    r = _REDEEM_CODE_PG.first(conn, {**_mint_params(*args), "p_hash": code_hash})
    return bool(r[0]), bool(r[1])


def rotate_refresh_in_one_statement(
    conn: Connection, *args: Any, token_hash: str, retry_blob: bytes | None
) -> tuple[bool, bool]:
    """PostgreSQL: spend the refresh token (its row's id and stored hash, as its read found
    them; recording its successor and the sealed retry pair), touch the grant, insert the
    new pair; (spent, minted)."""
    params = {**_mint_params(*args), "p_hash": token_hash, "p_blob": retry_blob}
    r = _ROTATE_REFRESH_PG.first(conn, params)
    return bool(r[0]), bool(r[1])


_REFRESH_BY_HASH = Prepared(
    select(refresh_tokens, grants.c.revoked_at.label("grant_revoked_at"))
    .join(grants, grants.c.id == refresh_tokens.c.grant_id)
    .where(_hash_is(refresh_tokens.c.token_hash, "p_hash"))
)


def refresh_token_by_hash(conn: Connection, hashes: TokenHashes) -> Any:
    """The refresh token's row plus ``grant_revoked_at`` (a refresh token lives with its grant)."""
    return located_first(
        lambda h: _REFRESH_BY_HASH.first(conn, {"p_hash": h}), hashes, _is_none
    )


_REFRESH_NAMES = Prepared(
    select(clients.c.client_id, users.c.account_id)
    .select_from(clients)
    .join(users, users.c.id == bindparam("p_user"))
    .where(clients.c.id == bindparam("p_client"))
)


def client_and_account_ids(conn: Connection, client_pk: int, user_id: int) -> Any:
    return _REFRESH_NAMES.first(conn, {"p_user": user_id, "p_client": client_pk})


class AccessToken(NamedTuple):
    """What a bearer check or an introspection needs to know about a presented token.

    A named tuple: built on every bearer call, where a frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` per field) was a measurable share."""

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


def _access_token_columns(token_client: Any, token_user: Any) -> tuple[Any, ...]:
    """An access token's columns, in the order :func:`access_token_from_row` reads them; the
    token's client and user tables are given (aliases when the statement also reads the
    authenticating client)."""
    return (
        access_tokens.c.id,
        access_tokens.c.client_pk,
        token_client.c.client_id,
        access_tokens.c.user_id,
        token_user.c.account_id,
        token_user.c.max_domain,
        access_tokens.c.grant_id,
        access_tokens.c.scope,
        access_tokens.c.expires_at,
        access_tokens.c.revoked_at,
        grants.c.revoked_at.label("grant_revoked_at"),
    )


_ACCESS_TOKEN = Prepared(
    select(*_access_token_columns(clients, users))
    .join(clients, clients.c.id == access_tokens.c.client_pk)
    .join(users, users.c.id == access_tokens.c.user_id)
    .outerjoin(grants, grants.c.id == access_tokens.c.grant_id)
    .where(_hash_is(access_tokens.c.token_hash, "p_hash"))
)


def access_token(conn: Connection, hashes: TokenHashes) -> AccessToken | None:
    """One statement (``located_first``): the token, its owner, its client and whether its
    grant still lives."""
    r = located_first(lambda h: _ACCESS_TOKEN.first(conn, {"p_hash": h}), hashes, _is_none)
    return None if r is None else access_token_from_row(r)


def access_token_select() -> Any:
    """``access_token``'s statement (parameter ``p_hash``: one form of the hash), to build
    a larger one whose rows begin with the token's columns: read those with
    :func:`access_token_from_row`."""
    return _ACCESS_TOKEN.stmt


_tok_client = clients.alias("token_client")
_tok_user = users.alias("token_user")
_CLIENT_AND_ACCESS = _client_plus(
    _access_token_columns(_tok_client, _tok_user),
    clients.join(users, users.c.id == clients.c.owner_id)
    .outerjoin(access_tokens, _hash_is(access_tokens.c.token_hash, "p_hash"))
    .outerjoin(_tok_client, _tok_client.c.id == access_tokens.c.client_pk)
    .outerjoin(_tok_user, _tok_user.c.id == access_tokens.c.user_id)
    .outerjoin(grants, grants.c.id == access_tokens.c.grant_id),
)


def client_and_access_token(
    conn: Connection, client_id: str, hashes: TokenHashes
) -> tuple[Client | None, AccessToken | None]:
    """The client, and ``access_token(hashes)`` whichever client holds it: one statement
    (``located_first``; introspection, where the endpoint decides who may learn about the
    token)."""
    return _client_and_token(conn, _CLIENT_AND_ACCESS, client_id, hashes, access_token_from_row)


TokenOwners = namedtuple(
    "TokenOwners", "access_id access_client_pk refresh_grant_id refresh_client_pk"
)
_access_as = access_tokens.alias("presented_access")
_refresh_as = refresh_tokens.alias("presented_refresh")
_CLIENT_AND_OWNERS = _client_plus(
    (_access_as.c.id, _access_as.c.client_pk, _refresh_as.c.grant_id, _refresh_as.c.client_pk),
    clients.join(users, users.c.id == clients.c.owner_id)
    .outerjoin(_access_as, _hash_is(_access_as.c.token_hash, "p_access_hash"))
    .outerjoin(_refresh_as, _hash_is(_refresh_as.c.token_hash, "p_refresh_hash")),
)


def client_and_token_owners(
    conn: Connection, client_id: str, access_hashes: TokenHashes, refresh_hashes: TokenHashes
) -> tuple[Client | None, TokenOwners]:
    """The client, and which client holds the presented value as an access token (its id)
    and as a refresh token (its grant): one statement (revocation), and one more with the
    plain HMACs if the located hashes found neither (``located_first``)."""
    if "\x00" in client_id:
        return None, TokenOwners(None, None, None, None)

    def read(form: int) -> Any:
        return _CLIENT_AND_OWNERS.first(
            conn,
            {
                "p_client_id": client_id,
                "p_access_hash": access_hashes[form],
                "p_refresh_hash": refresh_hashes[form],
            },
        )

    r = read(0)
    if r is not None and r[_N_CLIENT] is None and r[_N_CLIENT + 2] is None:
        if access_hashes[1] != access_hashes[0]:  # neither found: an earlier release's token?
            r = read(1)
    if r is None:
        return None, TokenOwners(None, None, None, None)
    return client_from_row(r), TokenOwners._make(r[_N_CLIENT:])


def access_token_from_row(r: Sequence[Any]) -> AccessToken:
    """The token from a row that begins with its columns (``_access_token_columns``, e.g.
    ``access_token_select()``'s)."""
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
