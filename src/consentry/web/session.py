"""Login sessions: a random cookie, stored server-side only as its keyed hash.

The id rotates at login (no fixation); cookies are HttpOnly, SameSite=Lax, and Secure when
the pages are served over https. The CSRF token is an HMAC of the session id, so it needs
no storage and changes when the session does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response

from consentry.crypto import new_secret
from consentry.runtime import Runtime
from consentry.store.hot import Prepared
from consentry.store.models import sessions, users

COOKIE = "consentry_session"
KIND = "session"


@dataclass
class Session:
    raw_id: str = field(repr=False)  # the cookie value: never in a log line or a repr
    user_id: int | None
    user_email: str | None
    user_name: str | None
    user_max_domain: str | None
    pending_request: str | None
    is_new: bool = False

    @property
    def logged_in(self) -> bool:
        return self.user_id is not None


_SESSION = Prepared(
    select(
        sessions.c.user_id,
        sessions.c.pending_request,
        users.c.email,
        users.c.name,
        users.c.max_domain,
    )
    .select_from(sessions)
    .outerjoin(users, users.c.id == sessions.c.user_id)
    .where(
        sessions.c.session_hash == bindparam("p_hash"),
        sessions.c.expires_at > bindparam("p_now"),
    )
)


def _session_row(conn: Connection, session_hash: str, now: int) -> Any:
    return _SESSION.first(conn, {"p_hash": session_hash, "p_now": now})


async def load(rt: Runtime, request: Request) -> Session | None:
    raw = request.cookies.get(COOKIE)
    if not raw or len(raw) != 64:
        return None
    # A prepared read on the hot-path reader (every page and every authorization loads the
    # session): no pooled async connection and its thread hops.
    row = await rt.db.run_read(_session_row, rt.keys.hash(raw, KIND), int(time.time()))
    if row is None:
        return None
    return Session(raw, row.user_id, row.email, row.name, row.max_domain, row.pending_request)


async def create(rt: Runtime, user_id: int | None, pending_request: str | None = None) -> Session:
    raw = new_secret()
    now = int(time.time())
    ttl = rt.settings.session_ttl if user_id is not None else 3600
    async with rt.db.write() as conn:
        await conn.execute(
            insert(sessions).values(
                session_hash=rt.keys.hash(raw, KIND),
                user_id=user_id,
                pending_request=pending_request,
                created_at=now,
                expires_at=now + ttl,
            )
        )
    return Session(raw, user_id, None, None, None, pending_request, is_new=True)


async def destroy(rt: Runtime, session: Session) -> None:
    async with rt.db.write() as conn:
        await conn.execute(
            delete(sessions).where(sessions.c.session_hash == rt.keys.hash(session.raw_id, KIND))
        )


async def set_pending(rt: Runtime, session: Session, request_hash: str | None) -> None:
    async with rt.db.write() as conn:
        await conn.execute(
            update(sessions)
            .where(sessions.c.session_hash == rt.keys.hash(session.raw_id, KIND))
            .values(pending_request=request_hash)
        )
    session.pending_request = request_hash


def set_cookie(rt: Runtime, response: Response, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.raw_id,
        max_age=rt.settings.session_ttl if session.logged_in else None,
        httponly=True,
        samesite="lax",
        secure=rt.settings.secure_cookies,
        path="/",
    )


def clear_cookie(rt: Runtime, response: Response) -> None:
    response.delete_cookie(
        COOKIE, httponly=True, samesite="lax", secure=rt.settings.secure_cookies, path="/"
    )


def csrf_token(rt: Runtime, session: Session) -> str:
    return rt.keys.csrf_token(session.raw_id)


def csrf_ok(rt: Runtime, session: Session | None, sent: str | None) -> bool:
    if session is None or not sent:
        return False
    return rt.keys.check_csrf(session.raw_id, sent)
