"""``grant_type=authorization_code`` (RFC 6749 §4.1.3, RFC 7636 §4.6), checks in the RFC's order."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from typing import Any

from sqlalchemy.engine import Connection

from consentry.crypto import equal
from consentry.oauth.errors import ApiError, oauth_error
from consentry.oauth.issue import (
    CODE_KIND,
    insert_pair,
    new_pair,
    token_body,
)
from consentry.oauth.params import Params
from consentry.runtime import Runtime
from consentry.store import hot
from consentry.store.clients import Client

# RFC 7636 §4.1: code_verifier = 43*128unreserved
VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def lookup(rt: Runtime, params: Params) -> tuple[Any, tuple[Any, ...]] | None:
    """Read the code in the same statement as the client (``hot.client_and_code``)."""
    code = params.get("code")
    if code is None:
        return None
    return hot.client_and_code, (rt.keys.hash(code, CODE_KIND),)


async def exchange(
    rt: Runtime, client: Client, params: Params, row: hot.CodeRow | None
) -> dict[str, Any]:
    """``row``: the code as read with the client (``lookup``), None if this client has no
    code with that hash."""
    code = params.get("code")
    if code is None:
        raise oauth_error("invalid_request", "missing parameter: code")
    redirect_uri = params.get("redirect_uri")
    verifier = params.get("code_verifier")
    if verifier is not None and not VERIFIER.fullmatch(verifier):
        raise oauth_error("invalid_request", "code_verifier must be 43-128 unreserved characters")
    code_hash = rt.keys.hash(code, CODE_KIND)
    now = int(time.time())
    if row is None:
        # Unknown, or another client's: that client can neither redeem nor burn it.
        raise oauth_error("invalid_grant", "authorization code is invalid")
    if row.spent_at is not None:
        await _replayed(rt, int(row.grant_id), now)
    # The checks run on the row read with the client, before anything is written: a code
    # that fails one stays unspent, exactly as when they ran after a spend that was then
    # rolled back. Nothing they look at can change but spent_at and the grant's revoked_at,
    # and both are conditions of the spend itself.
    _check(row, redirect_uri, verifier, now)
    if row.grant_revoked_at is not None:
        raise oauth_error("invalid_grant", "the authorization was revoked")

    access, access_hash, refresh, refresh_hash = new_pair(rt.keys)
    ttl = rt.settings.access_token_ttl
    # One write: the conditional spend (of concurrent exchanges exactly one wins), the grant
    # touch and the pair; on PostgreSQL one statement in autocommit.
    outcome = await rt.db.run_single_write(
        _redeem,
        int(row.id),
        code_hash,
        client.id,
        int(row.user_id),
        int(row.grant_id),
        row.scope,
        now,
        access_hash,
        now + ttl,
        refresh_hash,
        now + rt.settings.refresh_token_ttl,
    )
    if outcome is _MINTED:
        return token_body(access, ttl, row.scope, refresh)
    if outcome is _REVOKED:
        # PostgreSQL only, and only when a revocation committed during the statement: the
        # code is spent, nothing was minted.
        raise oauth_error("invalid_grant", "the authorization was revoked")
    # Not spent by this request: another one won the race, or (PostgreSQL, whose spend is
    # conditional on a live grant) the grant was revoked since the read. Looked at after the
    # write ended, so no row lock from the failed UPDATE is held while the grant is locked
    # (deadlock-free on PostgreSQL).
    _, seen = await rt.db.run_read(hot.client_and_code, client.client_id, code_hash)
    if seen is not None and seen.spent_at is not None:
        await _replayed(rt, int(seen.grant_id), now)
    if seen is not None and seen.grant_revoked_at is not None:
        raise oauth_error("invalid_grant", "the authorization was revoked")
    raise oauth_error("invalid_grant", "authorization code is invalid")


async def _replayed(rt: Runtime, grant_id: int, now: int) -> None:
    """RFC 6749 §4.1.2 / RFC 9700 §4.2.4: a replayed code revokes what it issued."""
    await rt.db.run_write(hot.revoke_grants, [grant_id], now)
    raise oauth_error(
        "invalid_grant",
        "authorization code was already used; the tokens issued from it are revoked",
    )


def _check(row: hot.CodeRow, redirect_uri: str | None, verifier: str | None, now: int) -> None:
    """RFC 6749 §4.1.3 and RFC 7636 §4.6 on an unspent code of this client, in this order."""
    if row.expires_at <= now:
        raise oauth_error("invalid_grant", "authorization code has expired")
    # RFC 6749 §4.1.3: redirect_uri required iff it was in the authorization request,
    # and then identical.
    if row.redirect_uri_sent:
        if redirect_uri is None:
            raise oauth_error("invalid_grant", "redirect_uri is required for this code")
        if not equal(redirect_uri, row.redirect_uri):
            raise oauth_error("invalid_grant", "redirect_uri does not match the authorization")
    elif redirect_uri is not None and not equal(redirect_uri, row.redirect_uri):
        raise oauth_error("invalid_grant", "redirect_uri does not match the authorization")
    # RFC 7636 §4.6, RFC 9700 §2.1.1: a verifier only with a challenge, and it must match.
    challenge = row.code_challenge
    if challenge is not None:
        if verifier is None:
            raise oauth_error("invalid_grant", "code_verifier is required (PKCE)")
        if not equal(s256(verifier), challenge):
            raise oauth_error("invalid_grant", "code_verifier does not match the code_challenge")
    elif verifier is not None:
        raise oauth_error("invalid_grant", "code_verifier sent but no code_challenge was")


_MINTED: Any = object()  # the code was spent and the pair inserted
_LOST: Any = object()  # the code was not spent by this request
_REVOKED: Any = object()  # spent, but the grant was revoked meanwhile: nothing minted


def _redeem(
    conn: Connection,
    code_id: int,
    code_hash: str,
    client_pk: int,
    user_id: int,
    grant_id: int,
    scope: str | None,
    now: int,
    access_hash: str,
    access_expires_at: int,
    refresh_hash: str,
    refresh_expires_at: int,
) -> Any:
    """The write job: ``_MINTED``, ``_LOST`` or (PostgreSQL) ``_REVOKED``. ``code_id``: the
    row the read found for the presented code (by its hash and this client), ``code_hash``
    its hash; the spend's conditions are checked again on that row."""
    if conn.dialect.name == "postgresql":
        spent, minted = hot.redeem_code_in_one_statement(
            conn, code_id, client_pk, user_id, grant_id, scope, now,
            access_hash, access_expires_at, refresh_hash, refresh_expires_at,
            code_hash=code_hash,
        )
        return _MINTED if minted else _REVOKED if spent else _LOST
    # SQLite: the statements one by one in the writer's transaction; insert_pair raises
    # if the grant was revoked, which rolls the spend back with the rest.
    if hot.spend_code(conn, code_id, code_hash, client_pk, now) is None:
        return _LOST
    insert_pair(
        conn, access_hash, refresh_hash, client_pk, user_id, grant_id, scope,
        access_expires_at, refresh_expires_at, now,
    )
    return _MINTED


__all__ = ["exchange", "s256", "ApiError"]
