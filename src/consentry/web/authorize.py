"""Pages of the authorization endpoint: login when needed, consent, then the redirect."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from consentry.oauth import authorize as protocol
from consentry.oauth.params import ParamError, parse_urlencoded
from consentry.oauth.scopes import covers, describe
from consentry.runtime import Runtime
from consentry.store import tokens as store
from consentry.store.clients import Client, client_by_client_id
from consentry.web import session as sessions
from consentry.web.accounts import base_context, login_page, page_session, posted_form
from consentry.web.pages import error_page, redirect, render

REQUEST_KIND = "auth_request"


async def authorize_get(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    try:
        query = parse_urlencoded(request.scope.get("query_string", b""))
    except ParamError as exc:
        return error_page(request, 400, "Invalid request", f"The address is malformed: {exc}.")
    if query.names() == ["resume"]:
        return await _resume(rt, request)
    raw = {name: query.all(name) for name in query.names()}
    try:
        req, client = await protocol.validate(rt, raw, request.headers.get("host"))
    except protocol.PageError as exc:
        return error_page(request, 400, exc.title, exc.message)
    except protocol.RedirectError as exc:
        return redirect(protocol.error_redirect(rt, exc), 302)
    return await _proceed(rt, request, req, client)


async def _resume(rt: Runtime, request: Request) -> Response:
    """Back from the login page: pick up the request kept server-side for this session."""
    s = await sessions.load(rt, request)
    if s is None or not s.logged_in or s.pending_request is None:
        return error_page(request, 400, "Nothing to continue", "Start again from the application.")
    async with rt.db.read() as conn:
        row = await store.auth_request(conn, s.pending_request, int(time.time()))
        client = None
        if row is not None:
            req = protocol.AuthRequest.from_json(row["params"])
            client = await client_by_client_id(conn, req.client_id)
    await sessions.set_pending(rt, s, None)
    if row is None or client is None:
        return error_page(
            request, 400, "Request expired", "The authorization request expired. Start again."
        )
    return await _proceed(rt, request, req, client)


async def _proceed(
    rt: Runtime, request: Request, req: protocol.AuthRequest, client: Client
) -> Response:
    s, _new = await page_session(rt, request)
    if not s.logged_in:
        request_id = await protocol.save_pending(rt, req, client, None)
        await sessions.set_pending(rt, s, rt.keys.hash(request_id, REQUEST_KIND))
        return await login_page(request, client_name=client.name, session=s)
    assert s.user_id is not None
    if s.user_max_domain != client.owner_max_domain:
        # GetResponse MAX: a MAX account's users authorize only applications registered in
        # that account, on its own domain; a standard account never authorizes a MAX app.
        message = (
            "This application belongs to a GetResponse MAX account; log in with that account."
            if client.owner_max_domain is not None
            else "A GetResponse MAX account can only authorize applications registered in it."
        )
        return error_page(request, 403, "Wrong account", message)
    if rt.settings.remember_consent:
        found, granted = await rt.db.run_read(store.consent_of, s.user_id, client.id)
        if found and covers(granted, req.scope) and (granted is None) == (req.scope is None):
            # Already allowed this very access: not asked again (SPEC §1.1).
            return redirect(
                await protocol.approve(rt, req, client, s.user_id, remember=False), 302
            )
    request_id = await protocol.save_pending(rt, req, client, s.user_id)
    ctx = base_context(rt, s) | {
        "client": client,
        "scopes": describe(req.scope),
        "request_id": request_id,
        "redirect_host": urlsplit(req.redirect_uri).netloc,
    }
    return render(request, "consent.html", ctx)


async def authorize_post(request: Request) -> Response:
    posted = await posted_form(request)
    if isinstance(posted, Response):
        return posted
    rt, s, form = posted
    if not s.logged_in or s.user_id is None:
        return error_page(request, 403, "Not logged in", "Log in and start again.")
    decision = form.get("decision")
    request_id = form.get("request_id")
    if decision not in ("allow", "deny") or request_id is None:
        return error_page(request, 400, "Invalid form", "Choose Allow or Deny.")
    async with rt.db.write() as conn:
        row = await store.decide_auth_request(
            conn, rt.keys.hash(request_id, REQUEST_KIND), s.user_id, int(time.time())
        )
        client = None
        if row is not None:
            req = protocol.AuthRequest.from_json(row["params"])
            client = await client_by_client_id(conn, req.client_id)
    if row is None or client is None:
        # A second click, a reload or Back: the decision was already made once.
        return error_page(
            request,
            400,
            "Already answered",
            "This authorization request was already answered or has expired. "
            "Return to the application to start again.",
        )
    if decision == "deny":
        return redirect(protocol.deny_redirect(rt, req))
    return redirect(await protocol.approve(rt, req, client, s.user_id))
