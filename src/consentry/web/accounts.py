"""Sign up, log in, log out."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from consentry.runtime import Runtime
from consentry.store.users import DuplicateError, create_user, user_by_email
from consentry.web import session as sessions
from consentry.web.forms import FormError, read_form
from consentry.web.pages import error_page, redirect, render
from consentry.web.passwords import hash_password, password_problem, verify_password

EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}")


async def page_session(rt: Runtime, request: Request) -> tuple[sessions.Session, bool]:
    """The visitor's session, creating an anonymous one (for CSRF) when there is none."""
    s = await sessions.load(rt, request)
    if s is not None:
        return s, False
    return await sessions.create(rt, None), True


def base_context(rt: Runtime, s: sessions.Session) -> dict[str, object]:
    return {
        "csrf_token": sessions.csrf_token(rt, s),
        "user_email": s.user_email if s.logged_in else None,
    }


def with_cookie(rt: Runtime, response: Response, s: sessions.Session, new: bool) -> Response:
    if new:
        sessions.set_cookie(rt, response, s)
    return response


async def login_page(
    request: Request,
    *,
    error: str | None = None,
    email: str | None = None,
    client_name: str | None = None,
    status: int = 200,
    session: sessions.Session | None = None,
) -> Response:
    rt: Runtime = request.app.state.rt
    if session is not None:
        s, new = session, session.is_new
    else:
        s, new = await page_session(rt, request)
    if s.logged_in and error is None and client_name is None:
        return redirect("/connected-apps")
    ctx = base_context(rt, s) | {"error": error, "email": email, "client_name": client_name}
    return with_cookie(rt, render(request, "login.html", ctx, status), s, new)


async def login_get(request: Request) -> Response:
    return await login_page(request)


async def login_post(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    s = await sessions.load(rt, request)
    try:
        form = await read_form(rt, request)
    except FormError as exc:
        return error_page(request, 400, "Invalid form", str(exc))
    if not sessions.csrf_ok(rt, s, form.get("csrf_token")):
        return error_page(
            request, 403, "Form expired", "The form expired. Go back, reload and try again."
        )
    assert s is not None
    email = (form.get("email") or "").strip()
    password = form.get_raw("password") or ""
    async with rt.db.read() as conn:
        user = await user_by_email(conn, email) if len(email) <= 320 else None
    # Same work (one argon2 verification) whether or not the email exists.
    ok = verify_password(user["password_hash"] if user else None, password[:1024])
    if not ok or user is None:
        return await login_page(
            request, error="Wrong email or password.", email=email[:320], status=400
        )
    # Rotate the session id at login (no fixation); carry the pending authorization over.
    await sessions.destroy(rt, s)
    new = await sessions.create(rt, int(user["id"]), s.pending_request)
    target = "/oauth2_authorize.html?resume=1" if s.pending_request else "/connected-apps"
    response = redirect(target)
    sessions.set_cookie(rt, response, new)
    return response


async def signup_get(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    s, new = await page_session(rt, request)
    return with_cookie(rt, render(request, "signup.html", base_context(rt, s)), s, new)


async def signup_post(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    s = await sessions.load(rt, request)
    try:
        form = await read_form(rt, request)
    except FormError as exc:
        return error_page(request, 400, "Invalid form", str(exc))
    if not sessions.csrf_ok(rt, s, form.get("csrf_token")):
        return error_page(
            request, 403, "Form expired", "The form expired. Go back, reload and try again."
        )
    assert s is not None
    name = (form.get("name") or "").strip()
    email = (form.get("email") or "").strip()
    password = form.get_raw("password") or ""
    problem = None
    if not name or len(name) > 200:
        problem = "Enter your name (at most 200 characters)."
    elif not EMAIL.fullmatch(email) or len(email) > 320:
        problem = "Enter a valid email address."
    else:
        problem = password_problem(password)
    if problem is None:
        try:
            async with rt.db.write() as conn:
                user_id = await create_user(
                    conn, email=email, password_hash=hash_password(password), name=name
                )
        except DuplicateError:
            problem = "An account with this email already exists. Log in instead."
    if problem is not None:
        ctx = base_context(rt, s) | {"error": problem, "name": name[:200], "email": email[:320]}
        return render(request, "signup.html", ctx, 400)
    await sessions.destroy(rt, s)
    new = await sessions.create(rt, user_id, s.pending_request)
    target = "/oauth2_authorize.html?resume=1" if s.pending_request else "/connected-apps"
    response = redirect(target)
    sessions.set_cookie(rt, response, new)
    return response


async def logout_post(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    s = await sessions.load(rt, request)
    try:
        form = await read_form(rt, request)
    except FormError as exc:
        return error_page(request, 400, "Invalid form", str(exc))
    if not sessions.csrf_ok(rt, s, form.get("csrf_token")):
        return error_page(request, 403, "Form expired", "Reload the page and try again.")
    assert s is not None
    await sessions.destroy(rt, s)
    response = redirect("/login")
    sessions.clear_cookie(rt, response)
    return response
