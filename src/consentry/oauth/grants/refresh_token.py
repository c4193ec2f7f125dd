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

from consentry.oauth.errors import oauth_error
from consentry.oauth.issue import REFRESH_KIND, insert_pair, new_pair, token_body
from consentry.oauth.params import Params
from consentry.oauth.scopes import narrow, parse_scope
from consentry.runtime import Runtime
from consentry.store import tokens as store
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

    async with rt.db.write() as conn:
        row = await store.spend_refresh_token(
            conn,
            token_hash,
            client.id,
            now,
            retry_blob=sealed if rt.settings.refresh_grace > 0 else None,
            successor_hash=rt.keys.hash(new_refresh, REFRESH_KIND),
        )
        if row is not None:
            scope = narrow(row["scope"], requested_scope)  # raises -> rollback
            grant_id = int(row["grant_id"])
            if not await store.touch_live_grant(conn, grant_id, now):
                raise oauth_error("invalid_grant", "the authorization was revoked")
            await insert_pair(
                rt,
                conn,
                access_token=access,
                refresh_token=new_refresh,
                client_pk=client.id,
                user_id=int(row["user_id"]),
                grant_id=grant_id,
                scope=scope,
                now=now,
                access_ttl=ttl,
            )
            return token_body(access, ttl, scope, new_refresh)
    # Not spent by this request. The write transaction is over first: on PostgreSQL the
    # failed conditional UPDATE may still hold the token's row lock, and revoking (which
    # locks the grant) while holding it could deadlock with another request.
    async with rt.db.read() as conn:
        old = await store.refresh_token_by_hash(conn, token_hash)
        if old is None or old["client_pk"] != client.id:
            raise oauth_error("invalid_grant", "refresh token is invalid")
        if old["grant_revoked_at"] is not None:
            raise oauth_error("invalid_grant", "refresh token has been revoked")
        if old["spent_at"] is None:
            raise oauth_error(
                "invalid_grant", "refresh token has expired; the user must authorize again"
            )
        retry = await _retry(rt, conn, presented, old, now)
    if retry is not None:
        return retry
    # RFC 9700 §4.14.2: reuse of a rotated refresh token -> revoke the grant.
    async with rt.db.write() as conn:
        await store.revoke_grants(conn, [int(old["grant_id"])], now)
    raise oauth_error(
        "invalid_grant", "refresh token was already used; the authorization is revoked"
    )


async def _retry(
    rt: Runtime, conn: Any, presented: str, old: Any, now: int
) -> dict[str, Any] | None:
    """The pair issued from ``old`` if this is a retry the grace window forgives."""
    grace = rt.settings.refresh_grace
    if grace <= 0 or old["retry_blob"] is None or now - int(old["spent_at"]) > grace:
        return None
    # Only the immediate predecessor qualifies: its successor must still be unused.
    if old["successor_hash"] is None or not await store.refresh_token_is_unspent(
        conn, old["successor_hash"]
    ):
        return None
    try:
        kept = json.loads(rt.keys.open_retry(presented, bytes(old["retry_blob"])))
    except (InvalidTag, ValueError):
        return None
    scope = old["scope"] if kept["s"] == _INHERIT else kept["s"]
    return token_body(kept["a"], max(0, int(kept["e"]) - now), scope, kept["r"])
