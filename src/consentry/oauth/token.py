"""The token endpoint ``POST /v3/token`` (RFC 6749 §3.2): parse, authenticate, dispatch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

from limits import RateLimitItem, RateLimitItemPerSecond
from starlette.requests import Request
from starlette.responses import Response

from consentry.http import JSON, NO_STORE, read_body
from consentry.oauth.client_auth import authenticate_client, authenticate_client_with
from consentry.oauth.errors import oauth_error, throttled
from consentry.oauth.grants import authorization_code, client_credentials, refresh_token
from consentry.oauth.params import (
    ParamError,
    Params,
    form_error,
    parse_urlencoded,
    reject_duplicates,
)
from consentry.runtime import Runtime
from consentry.store.clients import Client

# A grant: (rt, client, params, what its lookup read) -> the token response body.
Grant = Callable[[Runtime, Client, Params, Any], Awaitable[dict[str, Any]]]
GRANTS: dict[str, Grant] = {
    "authorization_code": authorization_code.exchange,
    "refresh_token": refresh_token.refresh,
    "client_credentials": client_credentials.issue,
}
# What a grant reads in the same statement as client authentication (the code, the refresh
# token): (lookup, args) for ``authenticate_client_with``, or None. Never raises: parameter
# errors are the grant's to report, after client authentication, as before.
Lookup = Callable[[Runtime, Params], "tuple[Callable[..., Any], tuple[Any, ...]] | None"]
LOOKUPS: dict[str, Lookup] = {
    "authorization_code": authorization_code.lookup,
    "refresh_token": refresh_token.lookup,
}


@lru_cache(maxsize=8)
def _per_second(n: int) -> RateLimitItem:
    return RateLimitItemPerSecond(n)


async def read_form(rt: Runtime, request: Request) -> Params:
    """A form-encoded POST body, strictly parsed (RFC 6749 §3.2: x-www-form-urlencoded)."""
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    body = await read_body(request, rt.settings.max_body_bytes)
    if media != "application/x-www-form-urlencoded":
        if not body and media == "":
            return Params({})
        raise oauth_error(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
            contentType=ctype[:100],
        )
    try:
        params = parse_urlencoded(body)
    except ParamError as exc:
        raise form_error(exc) from None
    reject_duplicates(params)
    return params


async def token_endpoint(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    params = await read_form(rt, request)
    if request.scope["query_string"]:
        # Credentials and codes do not belong in URLs (RFC 6749 §3.2: POST body).
        raise oauth_error("invalid_request", "send token request parameters in the POST body")
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise oauth_error("invalid_request", "missing parameter: grant_type")
    lookup = LOOKUPS.get(grant_type)
    how = lookup(rt, params) if lookup is not None else None
    if how is None:
        client, found = await authenticate_client(rt, request, params), None
    else:
        client, found = await authenticate_client_with(rt, request, params, how[0], *how[1])
    per_second = rt.settings.token_rate_limit_per_second
    if per_second:
        item = _per_second(per_second)
        ok, reset = await rt.limiter.hit_counter(item, "token:" + client.client_id)
        if not ok:
            rt.metrics.rate_limited.labels("token").inc()
            raise throttled("token request rate limit reached for this client", max(1, reset),
                            per_second)
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise oauth_error(
            "unsupported_grant_type",
            f"grant_type {grant_type[:64]!r} is not supported",
            supported=sorted(GRANTS),
        )
    body = await grant(rt, client, params, found)
    rt.metrics.count_issued(grant_type)
    return JSON(body, headers=NO_STORE)
