"""Minting tokens: the one place that creates access and refresh tokens and their rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from consentry.crypto import Keyring
from consentry.oauth.errors import oauth_error
from consentry.store import hot

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


def insert_pair(
    conn: Connection,
    access_hash: str,
    refresh_hash: str | None,
    client_pk: int,
    user_id: int,
    grant_id: int | None,
    scope: str | None,
    access_expires_at: int,
    refresh_expires_at: int,
    now: int,
) -> None:
    """Insert the rows of a new access token (and refresh token): keyed hashes only.

    Tokens of a grant are minted only after the grant row was marked used while still
    live, in the same transaction: that row lock orders minting against a concurrent
    revocation (docs/architecture.md), so nothing is ever minted into a revoked grant."""
    if grant_id is not None and not hot.touch_live_grant(conn, grant_id, now):
        raise oauth_error("invalid_grant", "the authorization was revoked")
    hot.insert_access_token(
        conn,
        token_hash=access_hash,
        client_pk=client_pk,
        user_id=user_id,
        grant_id=grant_id,
        scope=scope,
        expires_at=access_expires_at,
    )
    if refresh_hash is not None:
        assert grant_id is not None
        hot.insert_refresh_token(
            conn,
            token_hash=refresh_hash,
            client_pk=client_pk,
            user_id=user_id,
            grant_id=grant_id,
            scope=scope,
            expires_at=refresh_expires_at,
        )


def new_pair(keys: Keyring) -> tuple[str, str, str, str]:
    """A new access token, its stored hash, a new refresh token, its stored hash."""
    access, access_hash = keys.mint(ACCESS_KIND)
    refresh, refresh_hash = keys.mint(REFRESH_KIND)
    return access, access_hash, refresh, refresh_hash
