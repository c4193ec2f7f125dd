"""Token revocation ``POST /v3/token/revoke`` (RFC 7009)."""

from __future__ import annotations

import time

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response

from consentry.http import NO_STORE
from consentry.oauth.client_auth import authenticate_client
from consentry.oauth.errors import oauth_error
from consentry.oauth.issue import ACCESS_KIND, REFRESH_KIND
from consentry.oauth.token import read_form
from consentry.runtime import Runtime
from consentry.store import hot


async def revocation_endpoint(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    params = await read_form(rt, request)
    client = await authenticate_client(rt, request, params)  # RFC 7009 §2.1
    token = params.get("token")
    if token is None:
        raise oauth_error("invalid_request", "missing parameter: token")
    hint = params.get("token_type_hint")  # RFC 7009 §2.1: a hint only; unknown ones ignored
    now = int(time.time())
    order = ("refresh", "access") if hint == "refresh_token" else ("access", "refresh")
    revoked = await rt.db.run_write(
        _revoke,
        order,
        rt.keys.hash(token, ACCESS_KIND),
        rt.keys.hash(token, REFRESH_KIND),
        client.id,
        now,
    )
    if revoked is not None:
        rt.metrics.tokens_revoked.labels(revoked).inc()
    # RFC 7009 §2.2: 200 also for an unknown or already invalid token.
    return Response(status_code=200, headers=NO_STORE)


def _revoke(
    conn: Connection,
    order: tuple[str, str],
    access_hash: str,
    refresh_hash: str,
    client_pk: int,
    now: int,
) -> str | None:
    """The write job: revoke the token (the kind revoked), or None if it is unknown."""
    for kind in order:
        if kind == "access":
            at = hot.access_token(conn, access_hash)
            if at is None:
                continue
            if at.client_pk != client_pk:
                raise oauth_error("unauthorized_client", "token was not issued to this client")
            hot.revoke_access_token(conn, at.id, now)
            return "access_token"
        rt_row = hot.refresh_token_by_hash(conn, refresh_hash)
        if rt_row is None:
            continue
        if rt_row.client_pk != client_pk:
            raise oauth_error("unauthorized_client", "token was not issued to this client")
        # Revoking a refresh token ends its grant and every token in it (RFC 7009 §2.1).
        hot.revoke_grants(conn, [int(rt_row.grant_id)], now)
        return "refresh_token"
    return None
