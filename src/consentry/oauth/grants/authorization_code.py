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
    ACCESS_KIND,
    CODE_KIND,
    REFRESH_KIND,
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


async def exchange(rt: Runtime, client: Client, params: Params) -> dict[str, Any]:
    code = params.get("code")
    if code is None:
        raise oauth_error("invalid_request", "missing parameter: code")
    redirect_uri = params.get("redirect_uri")
    verifier = params.get("code_verifier")
    if verifier is not None and not VERIFIER.fullmatch(verifier):
        raise oauth_error("invalid_request", "code_verifier must be 43-128 unreserved characters")
    code_hash = rt.keys.hash(code, CODE_KIND)
    now = int(time.time())
    access, refresh = new_pair()
    ttl = rt.settings.access_token_ttl

    # One write transaction: the conditional UPDATE spends the code (of concurrent exchanges
    # exactly one wins), the checks run, and the grant is touched and the pair inserted.
    scope = await rt.db.run_write(
        _redeem,
        code_hash,
        client.id,
        redirect_uri,
        verifier,
        now,
        rt.keys.hash(access, ACCESS_KIND),
        rt.keys.hash(refresh, REFRESH_KIND),
        now + ttl,
        now + rt.settings.refresh_token_ttl,
    )
    if scope is not _LOST:
        return token_body(access, ttl, scope, refresh)
    # Lost or replayed. Looked at after the write transaction ended, so no row lock from the
    # failed UPDATE is held while the grant is locked (deadlock-free on PostgreSQL).
    seen = await rt.db.run_read(hot.code_by_hash, code_hash)
    if seen is not None and seen.client_pk == client.id and seen.spent_at:
        # RFC 6749 §4.1.2 / RFC 9700 §4.2.4: a replayed code revokes what it issued.
        await rt.db.run_write(hot.revoke_grants, [int(seen.grant_id)], now)
        raise oauth_error(
            "invalid_grant",
            "authorization code was already used; the tokens issued from it are revoked",
        )
    raise oauth_error("invalid_grant", "authorization code is invalid")


_LOST: Any = object()  # the code was not spent by this request


def _redeem(
    conn: Connection,
    code_hash: str,
    client_pk: int,
    redirect_uri: str | None,
    verifier: str | None,
    now: int,
    access_hash: str,
    refresh_hash: str,
    access_expires_at: int,
    refresh_expires_at: int,
) -> Any:
    """The write job: the granted scope, or ``_LOST`` if this request did not spend the code.

    Any error raised here rolls the spend back with the rest of the transaction."""
    row = hot.spend_code(conn, code_hash, client_pk, now)
    if row is None:
        return _LOST
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
    insert_pair(
        conn,
        access_hash,
        refresh_hash,
        client_pk,
        int(row.user_id),
        int(row.grant_id),
        row.scope,
        access_expires_at,
        refresh_expires_at,
        now,
    )
    return row.scope


__all__ = ["exchange", "s256", "ApiError"]
