"""``grant_type=client_credentials`` (RFC 6749 §4.4): a token for the developer's own account."""

from __future__ import annotations

import time
from typing import Any

from consentry.crypto import new_token
from consentry.oauth.issue import insert_pair, token_body
from consentry.oauth.params import Params
from consentry.oauth.scopes import parse_scope
from consentry.runtime import Runtime
from consentry.store.clients import Client


async def issue(rt: Runtime, client: Client, params: Params) -> dict[str, Any]:
    scope = parse_scope(params.get("scope"))
    now = int(time.time())
    ttl = rt.settings.client_credentials_ttl
    access = new_token()
    async with rt.db.write() as conn:
        await insert_pair(
            rt,
            conn,
            access_token=access,
            refresh_token=None,  # RFC 6749 §4.4.3: a refresh token SHOULD NOT be included
            client_pk=client.id,
            user_id=client.owner_id,
            grant_id=None,
            scope=scope,
            now=now,
            access_ttl=ttl,
        )
    return token_body(access, ttl, scope, None)
