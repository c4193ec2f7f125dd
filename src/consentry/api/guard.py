"""The bearer guard of the /v3 API (RFC 6750) with GetResponse's 1014 answers and limits."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response

from consentry.api.ratelimit import Decision
from consentry.http import error_response
from consentry.oauth.errors import QUOTA, ApiError, invalid_token, missing_token
from consentry.oauth.issue import ACCESS_KIND
from consentry.oauth.scopes import require
from consentry.runtime import Runtime
from consentry.store.hot import (
    AccessToken,
    Prepared,
    TokenHashes,
    access_token,
    access_token_from_row,
    located_first,
)

MAX_TOKEN_LENGTH = 512


class Caller(NamedTuple):
    """Who is calling: the token's account and client (a named tuple: one per API call)."""

    user_id: int
    account_id: str
    client_pk: int
    scope: str | None


Handler = Callable[[Request, Caller], Awaitable[Response]]


def bearer_token(request: Request) -> str:
    """RFC 6750 §2.1: the Authorization header only; the query string is refused (§2.3)."""
    header = request.headers.get("authorization")
    if header is None:
        if "access_token" in request.query_params:
            raise invalid_token(
                "Send the access token in the Authorization header, not in the URL", None
            )
        raise missing_token()
    return bearer_value(header)


def bearer_value(header: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value, or the 1014 error."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise invalid_token("The Authorization header must be: Bearer <token>", None)
    if len(value) > MAX_TOKEN_LENGTH or not value.isascii() or " " in value:
        raise invalid_token("The access token provided is malformed", value[:64])
    return value


def check(found: AccessToken | None, token: str, x_domain: str | None, now: int) -> Caller:
    """The caller a looked-up token stands for, or the RFC 6750 / GetResponse 1014 error.

    ``x_domain`` is the request's X-Domain header value (None when it has none)."""
    if found is None:
        raise invalid_token("The access token provided is invalid", token)
    if found.revoked:
        raise invalid_token("The access token provided has been revoked", token)
    if found.expires_at <= now:
        raise invalid_token("The access token provided is expired", token)  # the seed's body
    # GetResponse MAX: calls for a MAX account carry its domain in X-Domain.
    sent_domain = (x_domain or "").strip().lower() or None
    if sent_domain != found.user_max_domain:
        if found.user_max_domain is None:
            raise invalid_token("X-Domain header given for an account that is not MAX", token)
        raise invalid_token(
            "X-Domain header missing or wrong for this GetResponse MAX account",
            token,
            sentDomain=sent_domain,
        )
    return Caller(found.user_id, found.account_id, found.client_pk, found.scope)


async def authenticate(rt: Runtime, request: Request) -> Caller:
    token = bearer_token(request)
    found = await rt.db.run_read(access_token, rt.keys.token_hashes(token, ACCESS_KIND))
    return check(found, token, request.headers.get("x-domain"), int(time.time()))


# What a handler may read in the same database read as the token check: a plain function of
# the connection, the request and the caller. It runs only for a token that passes every
# check and holds the scope; an ApiError it raises is raised when the handler would run
# (after the rate limits), so errors come in the same order as without it.
Prefetch = Callable[[Connection, Any, Caller], Any]  # (conn, request or None, caller)
PREFETCHED = "consentry.prefetched"


class Joined(NamedTuple):
    """A handler's read joined to the token check: ONE statement instead of two (on
    PostgreSQL one round trip instead of two). ``stmt`` takes ``p_hash``, one form of the
    token's hash (``hot.located_first``); its rows begin with
    ``hot.access_token_select()``'s columns (no row: no such token), and ``finish(rows)``
    gives what the prefetch would have read for the token's caller. The read runs whether
    or not the token passes; its rows are dropped unless it does."""

    stmt: Prepared
    finish: Callable[[list[Any]], Any]


def _no_rows(rows: list[Any]) -> bool:
    return not rows


def token_and_prefetch(
    conn: Connection,
    hashes: TokenHashes,
    token: str,
    x_domain: str | None,
    request: Any,
    now: int,
    scope: str,
    prefetch: Prefetch,
    joined: Joined | None = None,
) -> tuple[AccessToken | None, Caller | None, tuple[bool, Any] | None]:
    """The token, its caller if it passes every check and holds ``scope`` (else None), and
    then what ``prefetch(conn, request, caller)`` read — or, with ``joined``, what its one
    statement read with the token: (True, value) or (False, ApiError)."""
    rows: list[Any] = []
    if joined is not None:
        rows = located_first(
            lambda h: joined.stmt.all(conn, {"p_hash": h}), hashes, _no_rows
        )
        found = access_token_from_row(rows[0]) if rows else None
    else:
        found = access_token(conn, hashes)
    try:
        caller = check(found, token, x_domain, now)
    except ApiError:
        return found, None, None
    if require(caller.scope, scope) is not None:
        return found, None, None
    try:
        value = joined.finish(rows) if joined is not None else prefetch(conn, request, caller)
        return found, caller, (True, value)
    except ApiError as exc:
        return found, caller, (False, exc)


def prefetched(request: Request) -> Any:
    """What the guard's prefetch read for this request (raising its error), or None."""
    got = request.scope.get(PREFETCHED)
    if got is None:
        return None
    ok, value = got
    if not ok:
        raise value
    return value


def quota_denied(rt: Runtime, decision: Decision, request: Request) -> Response:
    """GetResponse's answer when an account is over its frame or per-second limit."""
    rt.metrics.rate_limited.labels(decision.reason).inc()
    err = ApiError(
        QUOTA,
        "You have reached the limit of API calls, wait before the next call",
        {
            "currentLimit": decision.limit
            if decision.reason == "frame"
            else rt.settings.rate_limit_per_second,
            "timeToReset": f"{decision.retry_after} seconds",
        },
        headers=decision.headers() | {"Retry-After": str(decision.retry_after)},
    )
    return error_response(err, request)


def concurrency_denied(rt: Runtime, decision: Decision, request: Request) -> Response:
    """The answer when an account has its limit of calls in flight already."""
    rt.metrics.rate_limited.labels("concurrent").inc()
    err = ApiError(
        QUOTA,
        "Too many calls at once for this account",
        {"currentLimit": rt.settings.rate_limit_concurrent, "timeToReset": "1 seconds"},
        headers=decision.headers() | {"Retry-After": "1"},
    )
    return error_response(err, request)


def protected(
    scope: str,
    prefetch: Prefetch | None = None,
    joined: Callable[[Request], Joined | None] | None = None,
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap an API handler: authenticate, check scope, count against the rate limits.

    With ``prefetch``, the token check and the handler's read are one database read (one
    transaction, one connection) instead of two; the handler finds the result with
    ``prefetched(request)``. With ``joined`` too, a request it gives a :class:`Joined` for
    has both in one statement."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            rt: Runtime = request.app.state.rt
            if prefetch is None:
                caller = await authenticate(rt, request)
            else:
                token = bearer_token(request)
                now = int(time.time())
                x_domain = request.headers.get("x-domain")
                found, passed, pre = await rt.db.run_read(
                    token_and_prefetch,
                    rt.keys.token_hashes(token, ACCESS_KIND),
                    token,
                    x_domain,
                    request,
                    now,
                    scope,
                    prefetch,
                    joined(request) if joined is not None else None,
                )
                # A token that did not pass: check again, here, for the error to raise.
                caller = passed if passed is not None else check(found, token, x_domain, now)
                if pre is not None:
                    request.scope[PREFETCHED] = pre
            denied = require(caller.scope, scope)
            if denied is not None:
                raise denied
            key = caller.account_id
            decision = await rt.limiter.check(key)
            if not decision.allowed:
                return quota_denied(rt, decision, request)
            if not rt.limiter.acquire(key):
                return concurrency_denied(rt, decision, request)
            try:
                try:
                    response = await handler(request, caller)
                except ApiError as exc:
                    response = error_response(exc, request)
            finally:
                rt.limiter.release(key)
            # No handler sets these itself, so appending cannot duplicate one.
            response.raw_headers.extend(decision.raw_headers())
            return response

        return endpoint

    return wrap
