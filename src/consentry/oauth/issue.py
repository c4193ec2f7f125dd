"""Minting tokens: the one place that creates access and refresh tokens and their rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from consentry.crypto import new_token
from consentry.runtime import Runtime
from consentry.store import tokens as store

ACCESS_KIND = "access_token"
REFRESH_KIND = "refresh_token"
CODE_KIND = "code"


def token_body(
    access_token: str, expires_in: int, scope: str | None, refresh_token: str | None
) -> dict[str, Any]:
    """The seed's exact shape (RFC 6749 §5.1); ``refresh_token`` only when one was issued."""
    body: dict[str, Any] = {
        "access_token": access_token,
        "expires_in": expires_in,
        "token_type": "Bearer",
        "scope": scope,
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    return body


async def insert_pair(
    rt: Runtime,
    conn: AsyncConnection,
    *,
    access_token: str,
    refresh_token: str | None,
    client_pk: int,
    user_id: int,
    grant_id: int | None,
    scope: str | None,
    now: int,
    access_ttl: int,
) -> None:
    await store.insert_access_token(
        conn,
        token_hash=rt.keys.hash(access_token, ACCESS_KIND),
        client_pk=client_pk,
        user_id=user_id,
        grant_id=grant_id,
        scope=scope,
        expires_at=now + access_ttl,
    )
    if refresh_token is not None:
        assert grant_id is not None
        await store.insert_refresh_token(
            conn,
            token_hash=rt.keys.hash(refresh_token, REFRESH_KIND),
            client_pk=client_pk,
            user_id=user_id,
            grant_id=grant_id,
            scope=scope,
            expires_at=now + rt.settings.refresh_token_ttl,
        )


def new_pair() -> tuple[str, str]:
    return new_token(), new_token()
