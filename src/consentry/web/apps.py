"""Developer pages: "Add new application", my applications, and each one's details."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from consentry.crypto import new_secret
from consentry.http import BodyTooLarge
from consentry.oauth.authorize import is_loopback_http
from consentry.oauth.client_auth import SECRET_KIND
from consentry.runtime import Runtime
from consentry.store import clients as store
from consentry.store.clients import Client
from consentry.web import flash
from consentry.web import session as sessions
from consentry.web.accounts import base_context, csrf_failed, login_redirect, posted_form
from consentry.web.forms import FormError, file_field, read_multipart, text_field
from consentry.web.logos import MAX_BYTES as LOGO_MAX_BYTES
from consentry.web.logos import LogoError, process_logo
from consentry.web.pages import ASSET_HEADERS, error_page, redirect, render

# A logo of at most 512 KiB plus the text fields and multipart framing.
UPLOAD_LIMIT = 640 * 1024
MAX_NAME = 200
MAX_DESCRIPTION = 1000
MAX_REDIRECT_URIS = 10


def redirect_uri_problem(uri: str) -> str | None:
    """Why a redirect URL cannot be registered, or None (RFC 6749 §3.1.2, RFC 8252 §7.3)."""
    if len(uri) > 2000:
        return "is longer than 2000 characters"
    if any(c.isspace() for c in uri) or not uri.isprintable():
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "is not a valid URL"
    if "#" in uri:
        return "must not contain a fragment (RFC 6749 §3.1.2)"
    if "*" in uri:
        return "must not contain wildcards"
    if not parts.hostname:
        return "must be an absolute URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not contain user credentials"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and is_loopback_http(uri):
        return None
    if parts.scheme == "http" and parts.hostname == "localhost":
        return "use http://127.0.0.1 or http://[::1] instead of localhost (RFC 8252 §8.3)"
    return "must use https (http only for 127.0.0.1 or [::1])"


@dataclass
class AppForm:
    """The "Add new application" form as typed, and what is wrong with it."""

    name: str = ""
    description: str = ""
    redirect_uris: str = ""
    logo_again: bool = False  # a good logo came with other errors: browsers drop the file
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def uris(self) -> list[str]:
        lines = (line.strip() for line in self.redirect_uris.splitlines())
        return list(dict.fromkeys(line for line in lines if line))

    def validate(self) -> None:
        if not self.name:
            self.add("name", "Enter the application's name.")
        elif len(self.name) > MAX_NAME:
            self.add("name", f"Use at most {MAX_NAME} characters.")
        if len(self.description) > MAX_DESCRIPTION:
            self.add("description", f"Use at most {MAX_DESCRIPTION} characters.")
        uris = self.uris()
        if not uris:
            self.add("redirect_uris", "Enter at least one redirect URL.")
        elif len(uris) > MAX_REDIRECT_URIS:
            self.add("redirect_uris", f"Register at most {MAX_REDIRECT_URIS} redirect URLs.")
        else:
            for uri in uris:
                problem = redirect_uri_problem(uri)
                if problem:
                    shown = uri if len(uri) <= 100 else uri[:100] + "…"
                    self.add("redirect_uris", f"{shown} {problem}.")


async def _logged_in(rt: Runtime, request: Request) -> sessions.Session | None:
    s = await sessions.load(rt, request)
    return s if s is not None and s.logged_in else None


async def _owned(rt: Runtime, s: sessions.Session, client_id: str) -> Client | None:
    """The app if this user owns it; anyone else gets the same answer as for no app."""
    if len(client_id) > 128:
        return None
    async with rt.db.read() as conn:
        client = await store.client_by_client_id(conn, client_id)
    if client is None or client.owner_id != s.user_id:
        return None
    return client


def _not_found(request: Request, rt: Runtime, s: sessions.Session | None) -> Response:
    return error_page(
        request,
        404,
        "Application not found",
        "There is no application with this client ID among your applications.",
        context=base_context(rt, s) | {"link": ("/apps", "My applications")},
    )


# --- list ------------------------------------------------------------------------------------


async def apps_list(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    s = await _logged_in(rt, request)
    if s is None:
        return login_redirect("/apps")
    assert s.user_id is not None
    async with rt.db.read() as conn:
        apps = await store.clients_of_owner(conn, s.user_id)
    notice = "The application was deleted." if request.query_params.get("deleted") else None
    ctx = base_context(rt, s) | {"apps": apps, "notice": notice}
    return render(request, "apps.html", ctx)


# --- add new application ---------------------------------------------------------------------


def _new_form(
    request: Request, rt: Runtime, s: sessions.Session, form: AppForm, status: int = 200
) -> Response:
    ctx = base_context(rt, s) | {
        "form": form,
        "logo_max_kib": LOGO_MAX_BYTES // 1024,
        "max_redirect_uris": MAX_REDIRECT_URIS,
    }
    return render(request, "app_new.html", ctx, status)


async def app_new_get(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    s = await _logged_in(rt, request)
    if s is None:
        return login_redirect("/apps/new")
    return _new_form(request, rt, s, AppForm())


async def app_new_post(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    s = await sessions.load(rt, request)
    try:
        data = await read_multipart(request, limit=UPLOAD_LIMIT)
    except BodyTooLarge:
        if s is None or not s.logged_in:
            return csrf_failed(request)
        form = AppForm()
        form.add(
            "logo",
            f"The upload is too large: the logo must be at most {LOGO_MAX_BYTES // 1024} KiB. "
            "Fill in the form again.",
        )
        return _new_form(request, rt, s, form, 413)
    except FormError as exc:
        return error_page(request, 400, "Invalid form", str(exc), context=base_context(rt, s))
    try:
        if not sessions.csrf_ok(rt, s, text_field(data, "csrf_token")):
            return csrf_failed(request)
        assert s is not None
        if not s.logged_in or s.user_id is None:
            return login_redirect("/apps/new")
        form = AppForm(
            name=text_field(data, "name").strip(),
            description=text_field(data, "description").strip().replace("\r\n", "\n"),
            redirect_uris=text_field(data, "redirect_uris"),
        )
        form.validate()
        logo_raw = await file_field(data, "logo")
    finally:
        await data.close()
    logo: bytes | None = None
    if logo_raw is not None:
        try:
            logo = await run_in_threadpool(process_logo, logo_raw)
        except LogoError as exc:
            form.add("logo", str(exc))
    if form.errors:
        form.logo_again = logo is not None
        return _new_form(request, rt, s, form, 400)
    secret = new_secret()
    client_id = store.new_client_id()
    async with rt.db.write() as conn:
        await store.create_client(
            conn,
            owner_id=s.user_id,
            name=form.name,
            description=form.description,
            redirect_uris=form.uris(),
            secret_hash=rt.keys.hash(secret, SECRET_KIND),
            client_id=client_id,
            logo=logo,
            logo_mime="image/png" if logo is not None else None,
        )
    response = redirect(f"/apps/{client_id}")
    flash.set_secret(rt, response, s, client_id, secret)
    return response


# --- details, new secret, delete -------------------------------------------------------------


async def app_detail(request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    client_id: str = request.path_params["client_id"]
    s = await _logged_in(rt, request)
    if s is None:
        return login_redirect("/apps")
    client = await _owned(rt, s, client_id)
    if client is None:
        return _not_found(request, rt, s)
    secret = flash.read_secret(rt, request, s, client.client_id)
    example = urlencode({"response_type": "code", "client_id": client.client_id, "state": "STATE"})
    ctx = base_context(rt, s) | {
        "client": client,
        "secret": secret,
        "authorize_url": f"{rt.settings.app_url}/oauth2_authorize.html?{example}",
        "token_url": f"{rt.settings.api_url}/v3/token",
    }
    response = render(request, "app_detail.html", ctx)
    flash.clear_secret(rt, request, response, client.client_id)
    return response


async def _owned_for_post(
    request: Request,
) -> tuple[Runtime, sessions.Session, Client] | Response:
    """CSRF, login and ownership checks shared by the POST actions on one app."""
    posted = await posted_form(request)
    if isinstance(posted, Response):
        return posted
    rt, s, _form = posted
    if not s.logged_in:
        return login_redirect("/apps")
    client = await _owned(rt, s, request.path_params["client_id"])
    if client is None:
        return _not_found(request, rt, s)
    return rt, s, client


async def app_secret_post(request: Request) -> Response:
    checked = await _owned_for_post(request)
    if isinstance(checked, Response):
        return checked
    rt, s, client = checked
    secret = new_secret()
    async with rt.db.write() as conn:
        # The old secret's hash is overwritten: it fails at the very next token request.
        await store.set_secret_hash(conn, client.id, rt.keys.hash(secret, SECRET_KIND))
    response = redirect(f"/apps/{client.client_id}")
    flash.set_secret(rt, response, s, client.client_id, secret)
    return response


async def app_delete_post(request: Request) -> Response:
    checked = await _owned_for_post(request)
    if isinstance(checked, Response):
        return checked
    rt, _s, client = checked
    async with rt.db.write() as conn:
        await store.delete_client(conn, client.id)
    return redirect("/apps?deleted=1")


# --- logo ------------------------------------------------------------------------------------


async def app_logo(request: Request) -> Response:
    """The stored logo (a PNG we encoded ourselves); public, as the consent page shows it."""
    rt: Runtime = request.app.state.rt
    client_id: str = request.path_params["client_id"]
    found = None
    if len(client_id) <= 128:
        async with rt.db.read() as conn:
            found = await store.client_logo(conn, client_id)
    if found is None:
        return error_page(request, 404, "Not found", "This application has no logo.")
    content, mime = found
    headers = {**ASSET_HEADERS, "Cache-Control": "public, max-age=300"}
    return Response(content, media_type=mime, headers=headers)
