"""Connected applications: who holds access to my account, and taking it back."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from consentry.oauth.scopes import describe
from consentry.runtime import Runtime
from consentry.store import tokens as store
from consentry.store.clients import client_by_client_id
from consentry.web import session as sessions
from consentry.web.accounts import base_context, login_redirect, posted_form
from consentry.web.pages import error_page, redirect, render


async def connected_get(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    s = await sessions.load(rt, request)
    if s is None or not s.logged_in or s.user_id is None:
        return login_redirect("/connected-apps")
    async with rt.db.read() as conn:
        rows = await store.connected_apps(conn, s.user_id, int(time.time()))
    apps = [dict(row) | {"access": describe(row["scope"])} for row in rows]
    notice = (
        "Access revoked. The application can no longer use your account."
        if request.query_params.get("revoked")
        else None
    )
    ctx = base_context(rt, s) | {"apps": apps, "notice": notice}
    return render(request, "connected_apps.html", ctx)


async def revoke_post(request: Request) -> Response:
    posted = await posted_form(request)
    if isinstance(posted, Response):
        return posted
    rt, s, _form = posted
    if not s.logged_in or s.user_id is None:
        return login_redirect("/connected-apps")
    client_id: str = request.path_params["client_id"]
    now = int(time.time())
    async with rt.db.write() as conn:
        client = await client_by_client_id(conn, client_id) if len(client_id) <= 128 else None
        if client is not None:
            # Every grant of this user to this app, and every token descended from them, ends
            # now; the next API call with any of them is refused. Consent is asked again.
            grant_ids = await store.live_grant_ids(conn, s.user_id, client.id)
            await store.revoke_grants(conn, grant_ids, now)
            await store.forget_consent(conn, s.user_id, client.id)
    if client is None:
        return error_page(
            request,
            404,
            "Application not found",
            "This application does not exist (any more).",
            context=base_context(rt, s) | {"link": ("/connected-apps", "Connected applications")},
        )
    return redirect("/connected-apps?revoked=1")
