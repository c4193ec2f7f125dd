"""Token revocation ``POST /v3/token/revoke`` (RFC 7009)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from consentry.http import NO_STORE
from consentry.oauth.client_auth import authenticate_client
from consentry.oauth.errors import oauth_error
from consentry.oauth.issue import ACCESS_KIND, REFRESH_KIND
from consentry.oauth.token import read_form
from consentry.runtime import Runtime
from consentry.store import tokens as store


async def revocation_endpoint(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    params = await read_form(rt, request)
    client = await authenticate_client(rt, request, params)  # RFC 7009 §2.1
    token = params.get("token")
    if token is None:
        raise oauth_error("invalid_request", "missing parameter: token")
    hint = params.get("token_type_hint")  # RFC 7009 §2.1: a hint only; unknown ones ignored
    now = int(time.time())
    access_hash = rt.keys.hash(token, ACCESS_KIND)
    refresh_hash = rt.keys.hash(token, REFRESH_KIND)
    async with rt.db.write() as conn:
        order = ("refresh", "access") if hint == "refresh_token" else ("access", "refresh")
        for kind in order:
            if kind == "access":
                at = await store.access_token(conn, access_hash)
                if at is None:
                    continue
                if at.client_pk != client.id:
                    raise oauth_error("unauthorized_client", "token was not issued to this client")
                await store.revoke_access_token(conn, at.id, now)
                rt.metrics.tokens_revoked.labels("access_token").inc()
                break
            rt_row = await store.refresh_token_by_hash(conn, refresh_hash)
            if rt_row is None:
                continue
            if rt_row["client_pk"] != client.id:
                raise oauth_error("unauthorized_client", "token was not issued to this client")
            # Revoking a refresh token ends its grant and every token in it (RFC 7009 §2.1).
            await store.revoke_grants(conn, [int(rt_row["grant_id"])], now)
            rt.metrics.tokens_revoked.labels("refresh_token").inc()
            break
    # RFC 7009 §2.2: 200 also for an unknown or already invalid token.
    return Response(status_code=200, headers=NO_STORE)
