"""``grant_type=client_credentials`` (RFC 6749 §4.4): a token for the developer's own account."""

from __future__ import annotations

import time
from typing import Any

from consentry.oauth.issue import ACCESS_KIND, insert_pair, token_body
from consentry.oauth.params import Params
from consentry.oauth.scopes import parse_scope
from consentry.runtime import Runtime
from consentry.store.clients import Client


async def issue(rt: Runtime, client: Client, params: Params, _found: Any = None) -> dict[str, Any]:
    scope = parse_scope(params.get("scope"))
    now = int(time.time())
    ttl = rt.settings.client_credentials_ttl
    access, access_hash = rt.keys.mint(ACCESS_KIND)
    # One INSERT, committed before we answer: on PostgreSQL in autocommit (one round trip), on
    # SQLite with whatever else is in the same group commit.
    await rt.db.run_single_write(
        insert_pair,
        access_hash,
        None,  # RFC 6749 §4.4.3: a refresh token SHOULD NOT be included
        client.id,
        client.owner_id,
        None,
        scope,
        now + ttl,
        0,
        now,
    )
    return token_body(access, ttl, scope, None)
