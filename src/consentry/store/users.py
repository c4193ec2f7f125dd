"""Queries on people's accounts and their sender addresses (from-fields)."""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from consentry.store.models import from_fields, users


class DuplicateError(Exception):
    """A unique property (email, domain) is already taken."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _public_id() -> str:
    # GetResponse's ids are short opaque strings; ours are random, never sequential.
    return secrets.token_urlsafe(6).replace("-", "x").replace("_", "Y")


async def create_user(
    conn: AsyncConnection,
    *,
    email: str,
    password_hash: str,
    name: str = "",
    max_domain: str | None = None,
) -> int:
    """Create an account and its one default from-field (its own address)."""
    now = int(time.time())
    email = normalize_email(email)
    try:
        async with conn.begin_nested():
            user_id = (
                await conn.execute(
                    users.insert()
                    .values(
                        account_id=_public_id(),
                        email=email,
                        password_hash=password_hash,
                        name=name.strip(),
                        max_domain=max_domain.lower() if max_domain else None,
                        created_at=now,
                    )
                    .returning(users.c.id)
                )
            ).scalar_one()
    except IntegrityError:
        raise DuplicateError("an account with this email or domain already exists") from None
    await conn.execute(
        from_fields.insert().values(
            public_id=_public_id(),
            user_id=user_id,
            email=email,
            name=name.strip() or email.split("@")[0],
            is_active=True,
            is_default=True,
            created_at=now,
        )
    )
    return int(user_id)


async def user_by_email(conn: AsyncConnection, email: str) -> RowMapping | None:
    row = (
        await conn.execute(select(users).where(users.c.email == normalize_email(email)))
    ).mappings().first()
    return row


async def user_by_id(conn: AsyncConnection, user_id: int) -> RowMapping | None:
    return (await conn.execute(select(users).where(users.c.id == user_id))).mappings().first()


async def user_by_domain(conn: AsyncConnection, domain: str) -> RowMapping | None:
    return (
        await conn.execute(select(users).where(users.c.max_domain == domain.lower()))
    ).mappings().first()


async def count_users(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())


def row_dict(row: RowMapping | None) -> dict[str, Any] | None:
    return dict(row) if row is not None else None
