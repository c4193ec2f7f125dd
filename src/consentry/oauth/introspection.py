"""Token introspection ``POST /v3/token/introspect`` (RFC 7662)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response

from consentry.http import JSON, NO_STORE
from consentry.oauth.client_auth import authenticate_client, authenticate_client_with
from consentry.oauth.errors import oauth_error
from consentry.oauth.issue import ACCESS_KIND, REFRESH_KIND
from consentry.oauth.token import read_form
from consentry.runtime import Runtime
from consentry.store import hot

INACTIVE = {"active": False}
_NOT_READ: Any = object()  # the access token was not read with the client


async def introspection_endpoint(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    params = await read_form(rt, request)
    token = params.get("token")
    hint = params.get("token_type_hint")
    kinds = ("refresh", "access") if hint == "refresh_token" else ("access", "refresh")
    at: Any = _NOT_READ
    if token is None:
        await authenticate_client(rt, request, params)  # RFC 7662 §2.1: the client first
        raise oauth_error("invalid_request", "missing parameter: token")
    access_hashes = rt.keys.token_hashes(token, ACCESS_KIND)
    if kinds[0] == "access":
        # RFC 7662 §2.1 client authentication and the access-token lookup: one statement.
        client, at = await authenticate_client_with(
            rt, request, params, hot.client_and_access_token, access_hashes
        )
    else:
        client = await authenticate_client(rt, request, params)  # RFC 7662 §2.1
    now = int(time.time())
    if at is not _NOT_READ and at is not None:
        found: tuple[int, dict[str, Any]] | None = _access_answer(at, now, rt.settings.issuer)
    else:
        found = await rt.db.run_read(
            _lookup,
            kinds if at is _NOT_READ else kinds[1:],
            access_hashes,
            rt.keys.token_hashes(token, REFRESH_KIND),
            now,
            rt.settings.issuer,
        )
    body: dict[str, Any] = INACTIVE
    if found is not None:
        owner_pk, info = found
        # RFC 7662 §4: only the token's own client or a registered resource server
        # may learn about a token; to anyone else it is simply not active.
        if info.get("active") and (owner_pk == client.id or client.is_resource_server):
            body = info
    return JSON(body, headers=NO_STORE)


def _lookup(
    conn: Connection,
    kinds: tuple[str, ...],
    access_hashes: hot.TokenHashes,
    refresh_hashes: hot.TokenHashes,
    now: int,
    issuer: str,
) -> tuple[int, dict[str, Any]] | None:
    """The read job: (owning client pk, response) of the first kind the token is, or None."""
    for kind in kinds:
        if kind == "access":
            found = _access(conn, access_hashes, now, issuer)
        else:
            found = _refresh(conn, refresh_hashes, now, issuer)
        if found is not None:
            return found
    return None


def _access(
    conn: Connection, hashes: hot.TokenHashes, now: int, issuer: str
) -> tuple[int, dict[str, Any]] | None:
    at = hot.access_token(conn, hashes)
    return None if at is None else _access_answer(at, now, issuer)


def _access_answer(at: hot.AccessToken, now: int, issuer: str) -> tuple[int, dict[str, Any]]:
    if at.revoked or at.expires_at <= now:
        return at.client_pk, INACTIVE
    return at.client_pk, {
        "active": True,
        "client_id": at.client_id,
        "exp": at.expires_at,
        "scope": at.scope,
        "token_type": "Bearer",
        "sub": at.account_id,
        "iss": issuer,
    }


def _refresh(
    conn: Connection, hashes: hot.TokenHashes, now: int, issuer: str
) -> tuple[int, dict[str, Any]] | None:
    row = hot.refresh_token_by_hash(conn, hashes)
    if row is None:
        return None
    dead = row.grant_revoked_at is not None or row.spent_at is not None
    if dead or row.expires_at <= now:
        return int(row.client_pk), INACTIVE
    names = hot.client_and_account_ids(conn, int(row.client_pk), int(row.user_id))
    assert names is not None
    return int(row.client_pk), {
        "active": True,
        "client_id": names.client_id,
        "exp": row.expires_at,
        "scope": row.scope,
        "token_type": "refresh_token",
        "sub": names.account_id,
        "iss": issuer,
    }
