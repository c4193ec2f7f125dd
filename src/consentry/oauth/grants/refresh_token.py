"""``grant_type=refresh_token`` (RFC 6749 §6) with rotation (RFC 9700 §4.14.2).

Every refresh spends the presented token in one conditional UPDATE and issues a new pair.
A retry of the immediate predecessor inside the grace window gets the *same* pair back:
it is kept on the spent row, encrypted under a key derived from the spent token itself,
which the database does not hold. Any other reuse revokes the whole grant.
"""

from __future__ import annotations

import json
import time
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy.engine import Connection

from consentry.http import dumps
from consentry.oauth.errors import oauth_error
from consentry.oauth.issue import REFRESH_KIND, insert_pair, new_pair, token_body
from consentry.oauth.params import Params
from consentry.oauth.scopes import narrow, parse_scope
from consentry.runtime import Runtime
from consentry.store import hot
from consentry.store.clients import Client

_INHERIT = "\x00inherit"


def lookup(rt: Runtime, params: Params) -> tuple[Any, tuple[Any, ...]] | None:
    """Read the token in the same statement as the client (``hot.client_and_refresh_token``)."""
    presented = params.get("refresh_token")
    if presented is None:
        return None
    return hot.client_and_refresh_token, (rt.keys.token_hashes(presented, REFRESH_KIND),)


async def refresh(
    rt: Runtime, client: Client, params: Params, row: hot.RefreshRow | None
) -> dict[str, Any]:
    """``row``: the token as read with the client (``lookup``), None if this client has no
    refresh token with that hash."""
    presented = params.get("refresh_token")
    if presented is None:
        raise oauth_error("invalid_request", "missing parameter: refresh_token")
    requested_scope = parse_scope(params.get("scope"))
    now = int(time.time())
    if row is not None and row.spent_at is None and row.expires_at > now:
        # Spendable when read. The checks run before anything is written: a request that
        # fails one leaves the token unspent, as when they ran after a rolled-back spend.
        scope = narrow(row.scope, requested_scope)
        if row.grant_revoked_at is not None:
            raise oauth_error("invalid_grant", "the authorization was revoked")
        return await _rotate_or_not(rt, client, presented, row, scope, requested_scope, now)
    return await _not_spendable(rt, presented, row, now)


async def _rotate_or_not(
    rt: Runtime,
    client: Client,
    presented: str,
    row: hot.RefreshRow,
    scope: str | None,
    requested_scope: str | None,
    now: int,
) -> dict[str, Any]:
    ttl = rt.settings.access_token_ttl
    access, access_hash, new_refresh, refresh_hash = new_pair(rt.keys)
    sealed = None
    if rt.settings.refresh_grace > 0:
        sealed = rt.keys.seal_retry(
            presented,
            dumps(
                {
                    "a": access,
                    "r": new_refresh,
                    "s": _INHERIT if requested_scope is None else requested_scope,
                    "e": now + ttl,
                }
            ),
        )
    # One write: the conditional spend (recording the successor and the sealed pair), the
    # grant touch and the new pair; on PostgreSQL one statement in autocommit.
    outcome = await rt.db.run_single_write(
        _rotate,
        int(row.id),
        row.token_hash,
        client.id,
        int(row.user_id),
        int(row.grant_id),
        scope,
        now,
        access_hash,
        now + ttl,
        refresh_hash,
        now + rt.settings.refresh_token_ttl,
        sealed,
    )
    if outcome is _MINTED:
        return token_body(access, ttl, scope, new_refresh)
    if outcome is _REVOKED:
        # PostgreSQL only, and only when a revocation committed during the statement: the
        # token is spent, nothing was minted.
        raise oauth_error("invalid_grant", "the authorization was revoked")
    # Not spent by this request: another one won the race, or (PostgreSQL, whose spend is
    # conditional on a live grant) the grant was revoked since the read. The write is over
    # first: on PostgreSQL the failed conditional UPDATE may hold the token's row lock until
    # its transaction ends, and revoking (which locks the grant) while holding it could
    # deadlock with another request.
    stored = (row.token_hash, row.token_hash)  # the form the first read found it under
    _, seen = await rt.db.run_read(hot.client_and_refresh_token, client.client_id, stored)
    if (
        seen is not None
        and seen.spent_at is None
        and seen.expires_at > now
        and seen.grant_revoked_at is not None
    ):
        raise oauth_error("invalid_grant", "the authorization was revoked")
    return await _not_spendable(rt, presented, seen, now)


async def _not_spendable(
    rt: Runtime, presented: str, old: hot.RefreshRow | None, now: int
) -> dict[str, Any]:
    """A token this request cannot spend: unknown, revoked, expired, or already spent (a
    retry the grace window forgives gets the same pair back; any other reuse revokes)."""
    if old is None:
        raise oauth_error("invalid_grant", "refresh token is invalid")
    if old.grant_revoked_at is not None:
        raise oauth_error("invalid_grant", "refresh token has been revoked")
    if old.spent_at is None:
        raise oauth_error(
            "invalid_grant", "refresh token has expired; the user must authorize again"
        )
    if _successor_unspent(old, now, rt.settings.refresh_grace):
        retry = _retry(rt, presented, old, now)
        if retry is not None:
            return retry
    # RFC 9700 §4.14.2: reuse of a rotated refresh token -> revoke the grant.
    await rt.db.run_write(hot.revoke_grants, [int(old.grant_id)], now)
    raise oauth_error(
        "invalid_grant", "refresh token was already used; the authorization is revoked"
    )


_MINTED: Any = object()  # spent by this request, the new pair inserted
_LOST: Any = object()  # the presented token was not spent by this request
_REVOKED: Any = object()  # spent, but the grant was revoked meanwhile: nothing minted


def _rotate(
    conn: Connection,
    token_id: int,
    token_hash: str,
    client_pk: int,
    user_id: int,
    grant_id: int,
    scope: str | None,
    now: int,
    access_hash: str,
    access_expires_at: int,
    successor_hash: str,
    refresh_expires_at: int,
    retry_blob: bytes | None,
) -> Any:
    """The write job: ``_MINTED``, ``_LOST`` or (PostgreSQL) ``_REVOKED``. ``token_id`` and
    ``token_hash``: the row the read found for the presented token (by its hash and this
    client) and the hash it is stored under; the spend's conditions are checked again on
    that row."""
    if conn.dialect.name == "postgresql":
        spent, minted = hot.rotate_refresh_in_one_statement(
            conn, token_id, client_pk, user_id, grant_id, scope, now,
            access_hash, access_expires_at, successor_hash, refresh_expires_at,
            token_hash=token_hash, retry_blob=retry_blob,
        )
        return _MINTED if minted else _REVOKED if spent else _LOST
    # SQLite: the statements one by one in the writer's transaction; insert_pair raises
    # if the grant was revoked, which rolls the spend back with the rest.
    row = hot.spend_refresh_token(
        conn, token_id, token_hash, client_pk, now, retry_blob=retry_blob,
        successor_hash=successor_hash,
    )
    if row is None:
        return _LOST
    insert_pair(
        conn, access_hash, successor_hash, client_pk, user_id, grant_id, scope,
        access_expires_at, refresh_expires_at, now,
    )
    return _MINTED


def _successor_unspent(old: hot.RefreshRow, now: int, grace: int) -> bool:
    """Whether a retry of ``old`` could be forgiven: spent inside the grace window, and
    (only the immediate predecessor qualifies) its successor still unused."""
    return (
        old.spent_at is not None
        and grace > 0
        and old.retry_blob is not None
        and now - int(old.spent_at) <= grace
        and old.successor_hash is not None
        and old.successor_id is not None
        and old.successor_spent_at is None
        and old.grant_revoked_at is None
    )


def _retry(rt: Runtime, presented: str, old: Any, now: int) -> dict[str, Any] | None:
    """The pair issued from ``old`` if this is a retry the grace window forgives."""
    try:
        kept = json.loads(rt.keys.open_retry(presented, bytes(old.retry_blob)))
    except (InvalidTag, ValueError):
        return None
    scope = old.scope if kept["s"] == _INHERIT else kept["s"]
    return token_body(kept["a"], max(0, int(kept["e"]) - now), scope, kept["r"])
