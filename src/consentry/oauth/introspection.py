"""Token introspection ``POST /v3/token/introspect`` (RFC 7662)."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from consentry.http import JSON, NO_STORE
from consentry.oauth.client_auth import authenticate_client
from consentry.oauth.errors import oauth_error
from consentry.oauth.issue import ACCESS_KIND, REFRESH_KIND
from consentry.oauth.token import read_form
from consentry.runtime import Runtime
from consentry.store import tokens as store
from consentry.store.models import clients, users

INACTIVE = {"active": False}


async def introspection_endpoint(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    params = await read_form(rt, request)
    client = await authenticate_client(rt, request, params)  # RFC 7662 §2.1
    token = params.get("token")
    if token is None:
        raise oauth_error("invalid_request", "missing parameter: token")
    hint = params.get("token_type_hint")
    now = int(time.time())
    body: dict[str, Any] = INACTIVE
    async with rt.db.read() as conn:
        kinds = ("refresh", "access") if hint == "refresh_token" else ("access", "refresh")
        for kind in kinds:
            found = await (_access if kind == "access" else _refresh)(rt, conn, token, now)
            if found is None:
                continue
            owner_pk, info = found
            # RFC 7662 §4: only the token's own client or a registered resource server
            # may learn about a token; to anyone else it is simply not active.
            if info.get("active") and (owner_pk == client.id or client.is_resource_server):
                body = info
            break
    return JSON(body, headers=NO_STORE)


async def _access(
    rt: Runtime, conn: Any, token: str, now: int
) -> tuple[int, dict[str, Any]] | None:
    at = await store.access_token(conn, rt.keys.hash(token, ACCESS_KIND))
    if at is None:
        return None
    if at.revoked or at.expires_at <= now:
        return at.client_pk, INACTIVE
    return at.client_pk, {
        "active": True,
        "client_id": at.client_id,
        "exp": at.expires_at,
        "scope": at.scope,
        "token_type": "Bearer",
        "sub": at.account_id,
        "iss": rt.settings.issuer,
    }


async def _refresh(
    rt: Runtime, conn: Any, token: str, now: int
) -> tuple[int, dict[str, Any]] | None:
    from sqlalchemy import select

    row = await store.refresh_token_by_hash(conn, rt.keys.hash(token, REFRESH_KIND))
    if row is None:
        return None
    dead = row["grant_revoked_at"] is not None or row["spent_at"] is not None
    if dead or row["expires_at"] <= now:
        return int(row["client_pk"]), INACTIVE
    names = (
        await conn.execute(
            select(clients.c.client_id, users.c.account_id)
            .select_from(clients)
            .join(users, users.c.id == row["user_id"])
            .where(clients.c.id == row["client_pk"])
        )
    ).first()
    return int(row["client_pk"]), {
        "active": True,
        "client_id": names.client_id,
        "exp": row["expires_at"],
        "scope": row["scope"],
        "token_type": "refresh_token",
        "sub": names.account_id,
        "iss": rt.settings.issuer,
    }
