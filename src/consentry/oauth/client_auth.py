"""Client authentication at the token, revocation and introspection endpoints.

RFC 6749 §2.3.1: HTTP Basic with the id and secret form-urlencoded before base64, or
``client_id`` + ``client_secret`` in the body; a client uses one method per request.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

from limits import RateLimitItem, parse
from sqlalchemy.engine import Connection
from starlette.requests import Request

from consentry.crypto import equal
from consentry.http import client_host
from consentry.oauth.errors import oauth_error, throttled
from consentry.oauth.params import Params
from consentry.runtime import Runtime
from consentry.store.hot import Client, client_by_client_id

SECRET_KIND = "client_secret"  # noqa: S105 - a hash domain label, not a secret
# Compared against when the client id is unknown, so both paths cost the same.
_DUMMY_HASH = "0" * 64


def basic_credentials(header: str) -> tuple[str, str]:
    """Decode ``Basic base64(urlencode(id):urlencode(secret))``."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise oauth_error("invalid_client", "unsupported Authorization scheme, use Basic")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise oauth_error("invalid_client", "malformed Basic credentials") from None
    raw_id, sep, raw_secret = decoded.partition(":")
    if not sep:
        raise oauth_error("invalid_client", "malformed Basic credentials")
    return unquote_plus(raw_id), unquote_plus(raw_secret)


def _client_only(conn: Connection, client_id: str) -> tuple[Client | None, None]:
    return client_by_client_id(conn, client_id), None


async def authenticate_client(rt: Runtime, request: Request, params: Params) -> Client:
    """The authenticated client, or an ``invalid_client`` / ``invalid_request`` error."""
    client, _ = await authenticate_client_with(rt, request, params, _client_only)
    return client


async def authenticate_client_with(
    rt: Runtime,
    request: Request,
    params: Params,
    lookup: Callable[..., tuple[Client | None, Any]],
    *args: Any,
) -> tuple[Client, Any]:
    """``authenticate_client``, reading the client with ``lookup(conn, client_id, *args)``,
    which returns (client or None, whatever else the request needs): one database read
    for both (e.g. ``hot.client_and_code``). The second value is returned only once the
    client has authenticated."""
    header = request.headers.get("authorization")
    body_id = params.get("client_id")
    body_secret = params.get("client_secret")
    if header is not None:
        if body_secret is not None:
            # RFC 6749 §2.3: MUST NOT use more than one authentication method per request.
            raise oauth_error(
                "invalid_request", "send client credentials either in Basic auth or in the body"
            )
        client_id, secret = basic_credentials(header)
        if body_id is not None and body_id != client_id:
            raise oauth_error("invalid_request", "client_id differs from the Basic credentials")
    elif body_id is not None and body_secret is not None:
        client_id, secret = body_id, body_secret
    else:
        raise oauth_error(
            "invalid_client",
            "client authentication required (HTTP Basic or client_id and client_secret)",
        )
    if len(client_id) > 128 or len(secret) > 256:
        raise oauth_error("invalid_client", "client authentication failed")
    # Guessing a secret: failures are counted per client id and address (RFC 6819 §5.1.4.2.3);
    # a correct secret is refused too while the pair is throttled.
    limit = rt.settings.client_auth_failures
    pair = f"{client_id}\0{client_host(request)}"
    # Hashed for the shared store (no client ids or addresses in Redis); this process's
    # own counters keep the pair as it is (a hash on every token request for nothing).
    throttle_key = "clientauth:" + (pair if rt.limiter.local else rt.keys.hash(pair, "throttle"))
    item = _failures_item(limit)
    if limit and not await rt.limiter.test_counter(item, throttle_key):
        raise throttled("too many failed client authentications, wait and retry", 600, limit)
    client, extra = await rt.db.run_read(lookup, client_id, *args)
    expected = client.secret_hash if client is not None else _DUMMY_HASH
    ok = equal(rt.keys.hash(secret, SECRET_KIND), expected)
    if client is None or not ok:
        if limit:
            await rt.limiter.hit_counter(item, throttle_key)
        raise oauth_error("invalid_client", "client authentication failed")
    check_x_domain(request, client.owner_max_domain)
    return client, extra


@lru_cache(maxsize=8)
def _failures_item(limit: int) -> RateLimitItem:
    return parse(f"{max(limit, 1)}/600 seconds")


def check_x_domain(request: Request, max_domain: str | None) -> None:
    """GetResponse MAX: requests for a MAX account carry ``X-Domain: <domain>``."""
    sent = request.headers.get("x-domain")
    sent_norm = sent.strip().lower() if sent is not None else None
    if max_domain is None:
        if sent_norm:
            raise oauth_error("invalid_client", "X-Domain given for an account that is not MAX")
        return
    if sent_norm != max_domain:
        raise oauth_error(
            "invalid_client",
            "X-Domain header missing or wrong for this GetResponse MAX account",
        )
