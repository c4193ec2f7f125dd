"""Sign up, log in, log out, and the home page."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlencode

from limits import RateLimitItem, parse
from starlette.requests import Request
from starlette.responses import Response

from consentry.http import client_host
from consentry.oauth.params import Params
from consentry.runtime import Runtime
from consentry.store.users import DuplicateError, create_user, normalize_email, user_by_email
from consentry.web import session as sessions
from consentry.web.forms import FormError, read_form
from consentry.web.pages import error_page, redirect, render
from consentry.web.passwords import hash_password, password_problem, verify_password

EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}")

# Where a login may continue to: a fixed list, so `next` can never become an open redirect.
NEXT_PAGES = ("/", "/apps", "/apps/new", "/connected-apps")
RESUME = "/oauth2_authorize.html?resume=1"

# Failed logins are counted per account and per client address in fixed windows.
THROTTLE_WINDOW = 600
THROTTLE_KIND = "login_throttle"


def safe_next(value: str | None) -> str:
    return value if value in NEXT_PAGES else "/"


async def page_session(rt: Runtime, request: Request) -> tuple[sessions.Session, bool]:
    """The visitor's session, creating an anonymous one (for CSRF) when there is none."""
    s = await sessions.load(rt, request)
    if s is not None:
        return s, False
    return await sessions.create(rt, None), True


def base_context(rt: Runtime, s: sessions.Session | None) -> dict[str, object]:
    """What base.html needs: the CSRF token for the log-out form and who is logged in."""
    if s is None:
        return {"csrf_token": None, "user_email": None}
    return {
        "csrf_token": sessions.csrf_token(rt, s),
        "user_email": s.user_email if s.logged_in else None,
    }


def with_cookie(rt: Runtime, response: Response, s: sessions.Session, new: bool) -> Response:
    if new:
        sessions.set_cookie(rt, response, s)
    return response


def login_redirect(next_page: str) -> Response:
    """Send a visitor who is not logged in to the login page, to come back afterwards."""
    return redirect("/login?" + urlencode({"next": safe_next(next_page)}))


def csrf_failed(request: Request) -> Response:
    return error_page(
        request,
        403,
        "Form expired",
        "The form expired or was not sent from this site. Go back, reload the page and try again.",
    )


async def posted_form(
    request: Request,
) -> tuple[Runtime, sessions.Session, Params] | Response:
    """The checks every state-changing form shares, in one place: a readable, size-capped
    body (else a 400 page) carrying this session's CSRF token (else a 403 page)."""
    rt: Runtime = request.app.state.rt
    s = await sessions.load(rt, request)
    try:
        form = await read_form(rt, request)
    except FormError as exc:
        return error_page(request, 400, "Invalid form", str(exc), context=base_context(rt, s))
    if s is None or not sessions.csrf_ok(rt, s, form.get("csrf_token")):
        return csrf_failed(request)
    return rt, s, form


async def start_session(
    rt: Runtime, old: sessions.Session, user_id: int, next_page: str
) -> Response:
    """Log in: a new session id (no fixation), carrying a pending authorization over."""
    await sessions.destroy(rt, old)
    new = await sessions.create(rt, user_id, old.pending_request)
    response = redirect(RESUME if old.pending_request else safe_next(next_page))
    sessions.set_cookie(rt, response, new)
    return response


# --- home ------------------------------------------------------------------------------------


async def home(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    s = await sessions.load(rt, request)
    ctx = base_context(rt, s) | {"user_name": s.user_name if s and s.logged_in else None}
    return render(request, "home.html", ctx)


# --- log in ----------------------------------------------------------------------------------


async def login_page(
    request: Request,
    *,
    error: str | None = None,
    email: str | None = None,
    client_name: str | None = None,
    next_page: str | None = None,
    status: int = 200,
    session: sessions.Session | None = None,
) -> Response:
    rt: Runtime = request.app.state.rt
    if session is not None:
        s, new = session, session.is_new
    else:
        s, new = await page_session(rt, request)
    if next_page is None:
        next_page = request.query_params.get("next")
    if s.logged_in and error is None and client_name is None:
        return redirect(safe_next(next_page))
    ctx = base_context(rt, s) | {
        "error": error,
        "email": email,
        "client_name": client_name,
        "next": safe_next(next_page),
    }
    return with_cookie(rt, render(request, "login.html", ctx, status), s, new)


async def login_get(request: Request) -> Response:
    return await login_page(request)


def _throttles(rt: Runtime, request: Request, email: str) -> list[tuple[RateLimitItem, str]]:
    """(limit, counter key) pairs for this attempt; a limit of 0 turns that throttle off."""
    out: list[tuple[RateLimitItem, str]] = []
    per_account = rt.settings.login_limit_per_account
    per_address = rt.settings.login_limit_per_address
    if per_account > 0:
        # Keyed by the email's hash: the same for known and unknown emails, no PII in Redis.
        key = rt.keys.hash(normalize_email(email)[:320], THROTTLE_KIND)
        out.append((parse(f"{per_account}/{THROTTLE_WINDOW} seconds"), "login:acct:" + key))
    if per_address > 0:
        out.append(
            (
                parse(f"{per_address}/{THROTTLE_WINDOW} seconds"),
                "login:addr:" + client_host(request),
            )
        )
    return out


async def login_post(request: Request) -> Response:
    posted = await posted_form(request)
    if isinstance(posted, Response):
        return posted
    rt, s, form = posted
    email = (form.get("email") or "").strip()
    password = form.get_raw("password") or ""
    next_page = safe_next(form.get("next"))
    throttles = _throttles(rt, request, email)
    # Tested before the password is checked, so a right password does not get through
    # either while the account is throttled; only failures are counted.
    for item, key in throttles:
        if not await rt.limiter.test_counter(item, key):
            minutes = THROTTLE_WINDOW // 60
            return error_page(
                request,
                429,
                "Too many failed attempts",
                "There were too many failed attempts to log in "
                + ("to this account" if key.startswith("login:acct:") else "from your network")
                + f". For your security, logging in is paused for up to {minutes} minutes. "
                "Please wait and try again later.",
                headers={"Retry-After": str(THROTTLE_WINDOW)},
                context={"link": ("/login?" + urlencode({"next": next_page}), "Back to log in")}
                | base_context(rt, s),
            )
    async with rt.db.read() as conn:
        user = await user_by_email(conn, email) if len(email) <= 320 else None
    # Same work (one argon2 verification) whether or not the email exists.
    # argon2 costs ~100 ms of CPU and 64 MiB: off the event loop, so other requests go on.
    ok = await asyncio.to_thread(
        verify_password, user["password_hash"] if user else None, password[:1024]
    )
    if not ok or user is None:
        for item, key in throttles:
            await rt.limiter.hit_counter(item, key)
        return await login_page(
            request,
            error="Wrong email or password.",
            email=email[:320],
            next_page=next_page,
            status=400,
            session=s,
        )
    return await start_session(rt, s, int(user["id"]), next_page)


# --- sign up ---------------------------------------------------------------------------------


async def signup_get(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    s, new = await page_session(rt, request)
    ctx = base_context(rt, s) | {"next": safe_next(request.query_params.get("next"))}
    return with_cookie(rt, render(request, "signup.html", ctx), s, new)


async def signup_post(request: Request) -> Response:
    posted = await posted_form(request)
    if isinstance(posted, Response):
        return posted
    rt, s, form = posted
    name = (form.get("name") or "").strip()
    email = (form.get("email") or "").strip()
    password = form.get_raw("password") or ""
    next_page = safe_next(form.get("next"))
    problem = None
    if not name or len(name) > 200:
        problem = "Enter your name (at most 200 characters)."
    elif not EMAIL.fullmatch(email) or len(email) > 320:
        problem = "Enter a valid email address."
    else:
        problem = password_problem(password)
    if problem is None:
        password_hash = await asyncio.to_thread(hash_password, password)
        try:
            async with rt.db.write() as conn:
                user_id = await create_user(
                    conn, email=email, password_hash=password_hash, name=name
                )
        except DuplicateError:
            problem = "An account with this email already exists. Log in instead."
    if problem is not None:
        ctx = base_context(rt, s) | {
            "error": problem,
            "name": name[:200],
            "email": email[:320],
            "next": next_page,
        }
        return render(request, "signup.html", ctx, 400)
    return await start_session(rt, s, user_id, next_page)


# --- log out ---------------------------------------------------------------------------------


async def logout_post(request: Request) -> Response:
    posted = await posted_form(request)
    if isinstance(posted, Response):
        return posted
    rt, s, _form = posted
    await sessions.destroy(rt, s)
    response = redirect("/login")
    sessions.clear_cookie(rt, response)
    return response
