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

from consentry.oauth.errors import oauth_error
from consentry.oauth.issue import ACCESS_KIND, REFRESH_KIND, insert_pair, new_pair, token_body
from consentry.oauth.params import Params
from consentry.oauth.scopes import narrow, parse_scope
from consentry.runtime import Runtime
from consentry.store import hot
from consentry.store.clients import Client

_INHERIT = "\x00inherit"


async def refresh(rt: Runtime, client: Client, params: Params) -> dict[str, Any]:
    presented = params.get("refresh_token")
    if presented is None:
        raise oauth_error("invalid_request", "missing parameter: refresh_token")
    requested_scope = parse_scope(params.get("scope"))
    token_hash = rt.keys.hash(presented, REFRESH_KIND)
    now = int(time.time())
    ttl = rt.settings.access_token_ttl
    access, new_refresh = new_pair()
    sealed = None
    if rt.settings.refresh_grace > 0:
        sealed = rt.keys.seal_retry(
            presented,
            json.dumps(
                {
                    "a": access,
                    "r": new_refresh,
                    "s": _INHERIT if requested_scope is None else requested_scope,
                    "e": now + ttl,
                }
            ).encode(),
        )

    scope = await rt.db.run_write(
        _rotate,
        token_hash,
        client.id,
        now,
        sealed,
        rt.keys.hash(new_refresh, REFRESH_KIND),
        requested_scope,
        rt.keys.hash(access, ACCESS_KIND),
        now + ttl,
        now + rt.settings.refresh_token_ttl,
    )
    if scope is not _LOST:
        return token_body(access, ttl, scope, new_refresh)
    # Not spent by this request. The write transaction is over first: on PostgreSQL the
    # failed conditional UPDATE may still hold the token's row lock, and revoking (which
    # locks the grant) while holding it could deadlock with another request.
    old, successor_unspent = await rt.db.run_read(
        _inspect, token_hash, now, rt.settings.refresh_grace
    )
    if old is None or old.client_pk != client.id:
        raise oauth_error("invalid_grant", "refresh token is invalid")
    if old.grant_revoked_at is not None:
        raise oauth_error("invalid_grant", "refresh token has been revoked")
    if old.spent_at is None:
        raise oauth_error(
            "invalid_grant", "refresh token has expired; the user must authorize again"
        )
    retry = _retry(rt, presented, old, successor_unspent, now) if successor_unspent else None
    if retry is not None:
        return retry
    # RFC 9700 §4.14.2: reuse of a rotated refresh token -> revoke the grant.
    await rt.db.run_write(hot.revoke_grants, [int(old.grant_id)], now)
    raise oauth_error(
        "invalid_grant", "refresh token was already used; the authorization is revoked"
    )


_LOST: Any = object()  # the presented token was not spent by this request


def _rotate(
    conn: Connection,
    token_hash: str,
    client_pk: int,
    now: int,
    retry_blob: bytes | None,
    successor_hash: str,
    requested_scope: str | None,
    access_hash: str,
    access_expires_at: int,
    refresh_expires_at: int,
) -> Any:
    """The write job: spend, narrow, touch the grant, insert the new pair; the scope granted,
    or ``_LOST``. An error raised here rolls the spend back with everything else."""
    row = hot.spend_refresh_token(
        conn, token_hash, client_pk, now, retry_blob=retry_blob, successor_hash=successor_hash
    )
    if row is None:
        return _LOST
    scope = narrow(row.scope, requested_scope)  # raises -> rollback
    insert_pair(
        conn,
        access_hash,
        successor_hash,
        client_pk,
        int(row.user_id),
        int(row.grant_id),
        scope,
        access_expires_at,
        refresh_expires_at,
        now,
    )
    return scope


def _inspect(conn: Connection, token_hash: str, now: int, grace: int) -> tuple[Any, bool]:
    """The read job of a request that did not spend: the token's row, and whether its
    successor is still unspent when that could matter (a retry inside the grace window)."""
    old = hot.refresh_token_by_hash(conn, token_hash)
    if (
        old is None
        or old.spent_at is None
        or grace <= 0
        or old.retry_blob is None
        or now - int(old.spent_at) > grace
        or old.successor_hash is None
    ):
        return old, False
    # Only the immediate predecessor qualifies: its successor must still be unused.
    return old, hot.refresh_token_is_unspent(conn, old.successor_hash)


def _retry(
    rt: Runtime, presented: str, old: Any, successor_unspent: bool, now: int
) -> dict[str, Any] | None:
    """The pair issued from ``old`` if this is a retry the grace window forgives."""
    if not successor_unspent:
        return None
    try:
        kept = json.loads(rt.keys.open_retry(presented, bytes(old.retry_blob)))
    except (InvalidTag, ValueError):
        return None
    scope = old.scope if kept["s"] == _INHERIT else kept["s"]
    return token_body(kept["a"], max(0, int(kept["e"]) - now), scope, kept["r"])
