"""Token revocation ``POST /v3/token/revoke`` (RFC 7009)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from consentry.http import NO_STORE
from consentry.oauth.client_auth import authenticate_client, authenticate_client_with
from consentry.oauth.errors import oauth_error
from consentry.oauth.issue import ACCESS_KIND, REFRESH_KIND
from consentry.oauth.token import read_form
from consentry.runtime import Runtime
from consentry.store import hot


async def revocation_endpoint(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    params = await read_form(rt, request)
    token = params.get("token")
    if token is None:
        await authenticate_client(rt, request, params)  # RFC 7009 §2.1
        raise oauth_error("invalid_request", "missing parameter: token")
    # Client authentication and which client holds the token, as either kind: one statement.
    client, owners = await authenticate_client_with(
        rt,
        request,
        params,
        hot.client_and_token_owners,
        rt.keys.token_hashes(token, ACCESS_KIND),
        rt.keys.token_hashes(token, REFRESH_KIND),
    )
    hint = params.get("token_type_hint")  # RFC 7009 §2.1: a hint only; unknown ones ignored
    now = int(time.time())
    order = ("refresh", "access") if hint == "refresh_token" else ("access", "refresh")
    revoked = await _revoke(rt, order, owners, client.id, now)
    if revoked is not None:
        rt.metrics.tokens_revoked.labels(revoked).inc()
    # RFC 7009 §2.2: 200 also for an unknown or already invalid token.
    return Response(status_code=200, headers=NO_STORE)


async def _revoke(
    rt: Runtime, order: tuple[str, str], owners: hot.TokenOwners, client_pk: int, now: int
) -> str | None:
    """Revoke the token (the kind revoked), or None if it is unknown. Which token it is and
    whose it is cannot change (only expiry and revocation can), so they are read before
    the write."""
    for kind in order:
        if kind == "access":
            if owners.access_id is None:
                continue
            if owners.access_client_pk != client_pk:
                raise oauth_error("unauthorized_client", "token was not issued to this client")
            # One UPDATE: on PostgreSQL in autocommit.
            await rt.db.run_single_write(hot.revoke_access_token, int(owners.access_id), now)
            return "access_token"
        if owners.refresh_grant_id is None:
            continue
        if owners.refresh_client_pk != client_pk:
            raise oauth_error("unauthorized_client", "token was not issued to this client")
        # Revoking a refresh token ends its grant and every token in it (RFC 7009 §2.1): the
        # grant, then its access tokens, in one transaction (docs/architecture.md).
        await rt.db.run_write(hot.revoke_grants, [int(owners.refresh_grant_id)], now)
        return "refresh_token"
    return None
