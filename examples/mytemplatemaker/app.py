"""MyTemplateMaker: the seed's example application, built on ``consentry.client`` only.

A person connects their GetResponse (or consentry) account, sees its from-fields (sender
addresses), adds one, and disconnects. The page shows when the toolkit refreshed the
access token and offers "Reconnect" when the grant is gone.

Run it (the demo does this for you: ``consentry demo``)::

    MYTEMPLATEMAKER_CLIENT_ID=... MYTEMPLATEMAKER_CLIENT_SECRET=... \\
    uvicorn --app-dir examples --factory mytemplatemaker.app:create_app --port 8001

Configuration (environment):

- ``MYTEMPLATEMAKER_CLIENT_ID``, ``MYTEMPLATEMAKER_CLIENT_SECRET``: the registered application.
- ``MYTEMPLATEMAKER_REDIRECT_URI``: default ``http://127.0.0.1:8001/gr_callback``.
- ``MYTEMPLATEMAKER_PROVIDER``: ``consentry`` (default), ``getresponse`` or ``getresponse-max``.
- ``MYTEMPLATEMAKER_CONSENTRY_URL``: the consentry server, default ``http://127.0.0.1:8000``.
- ``MYTEMPLATEMAKER_MAX_DOMAIN``, ``MYTEMPLATEMAKER_MAX_TLD`` (``com`` or ``pl``): GetResponse MAX.
- ``MYTEMPLATEMAKER_TOKEN_FILE``: where tokens are kept (default: a file in the temp folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import FormData, MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consentry.client import (
    AccessDenied,
    APIError,
    AsyncClient,
    AuthorizationError,
    ClientError,
    FileTokenStore,
    Provider,
    ReauthorizationRequired,
    StateMismatch,
    TokenSet,
)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "mtm_session"
_SID = re.compile(r"[A-Za-z0-9_-]{43}")
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

templates = Jinja2Templates(directory=str(HERE / "templates"))


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """MyTemplateMaker's settings, read from ``MYTEMPLATEMAKER_*`` variables."""

    client_id: str
    client_secret: str
    redirect_uri: str
    provider: Provider | None
    token_file: Path
    problems: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env

        def get(name: str, default: str = "") -> str:
            return env.get(f"MYTEMPLATEMAKER_{name}", default).strip()

        problems: list[str] = []
        client_id, client_secret = get("CLIENT_ID"), get("CLIENT_SECRET")
        if not client_id or not client_secret:
            problems.append(
                "Set MYTEMPLATEMAKER_CLIENT_ID and MYTEMPLATEMAKER_CLIENT_SECRET to the "
                "application's credentials."
            )
        kind = get("PROVIDER", "consentry").lower()
        provider: Provider | None = None
        try:
            if kind == "consentry":
                provider = Provider.consentry(get("CONSENTRY_URL", "http://127.0.0.1:8000"))
            elif kind == "getresponse":
                provider = Provider.getresponse()
            elif kind == "getresponse-max":
                domain = get("MAX_DOMAIN")
                if not domain:
                    problems.append("Set MYTEMPLATEMAKER_MAX_DOMAIN to the MAX account's domain.")
                else:
                    provider = Provider.getresponse_max(domain, tld=get("MAX_TLD", "com"))
            else:
                problems.append(
                    "MYTEMPLATEMAKER_PROVIDER must be consentry, getresponse or getresponse-max."
                )
        except ValueError as exc:
            problems.append(str(exc))
        token_file = get("TOKEN_FILE")
        path = (
            Path(token_file)
            if token_file
            else Path(tempfile.gettempdir()) / "mytemplatemaker" / "tokens.json"
        )
        return cls(
            client_id=client_id,
            client_secret=client_secret,
            redirect_uri=get("REDIRECT_URI", "http://127.0.0.1:8001/gr_callback"),
            provider=provider,
            token_file=path,
            problems=tuple(problems),
        )


# --- browser sessions -------------------------------------------------------------------------


@dataclass
class Session:
    """What MyTemplateMaker remembers about one browser, in memory."""

    sid: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    oauth: dict[str, Any] | None = None  # the toolkit's AuthorizationRequest, until the callback
    flashes: list[tuple[str, str]] = field(default_factory=list)
    refreshed_at: float | None = None
    reauthorize_url: str | None = None

    @property
    def key(self) -> str:
        """The token store key of this browser: derived from, but not equal to, the cookie."""
        return hashlib.sha256(self.sid.encode()).hexdigest()[:32]

    def flash(self, kind: str, text: str) -> None:
        self.flashes.append((kind, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        out, self.flashes = self.flashes, []
        return out


class Sessions:
    """Server-side sessions keyed by a random cookie (no signing library needed).

    The token store is keyed by a hash of the cookie, so a connected account survives
    a restart of the app; the cookie is replaced on every successful connection
    (no session fixation), and only then (a forged callback cannot log anyone out).
    """

    def __init__(self) -> None:
        self._data: dict[str, Session] = {}

    def get(self, request: Request) -> tuple[Session, bool]:
        sid = request.cookies.get(SESSION_COOKIE, "")
        if _SID.fullmatch(sid):
            s = self._data.get(sid)
            if s is None:
                s = self._data[sid] = Session(sid)
            return s, False
        return self.new(), True

    def new(self) -> Session:
        s = Session(secrets.token_urlsafe(32))
        self._data[s.sid] = s
        return s

    def replace(self, old: Session, fresh: Session) -> None:
        """Swap a browser's session for a new one (a new cookie value)."""
        self._data.pop(old.sid, None)
        fresh.flashes = old.flashes
        self._data[fresh.sid] = fresh


def _set_cookie(response: Response, s: Session, secure: bool) -> Response:
    response.set_cookie(
        SESSION_COOKIE,
        s.sid,
        max_age=30 * 86400,
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back to /gr_callback
        secure=secure,
    )
    return response


# --- the application --------------------------------------------------------------------------


class MyTemplateMaker:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.sessions = Sessions()
        self.secure = config.redirect_uri.startswith("https://")
        self.client: AsyncClient | None = None
        if config.provider is not None and not config.problems:
            config.token_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.client = AsyncClient(
                config.provider,
                config.client_id,
                config.client_secret,
                redirect_uri=config.redirect_uri,
                store=FileTokenStore(config.token_file),
            )

    # helpers --------------------------------------------------------------------------------

    def page(
        self, request: Request, s: Session, name: str, status: int = 200, **ctx: Any
    ) -> Response:
        provider = self.config.provider
        context = {
            "flashes": s.take_flashes(),
            "csrf": s.csrf,
            "provider_name": _provider_label(provider),
            "provider_url": provider.authorize_url.rsplit("/", 1)[0] if provider else "",
            **ctx,
        }
        response = templates.TemplateResponse(request, name, context, status_code=status)
        return _set_cookie(response, s, self.secure)

    def redirect(self, s: Session, to: str = "/") -> Response:
        return _set_cookie(RedirectResponse(to, status_code=303), s, self.secure)

    def not_configured(self, request: Request, s: Session) -> Response:
        return self.page(request, s, "setup.html", 503, problems=self.config.problems)

    async def form(self, request: Request, s: Session) -> FormData | None:
        form = await request.form()
        sent = form.get("csrf_token")
        if not isinstance(sent, str) or not secrets.compare_digest(sent, s.csrf):
            return None
        return form

    async def call(self, s: Session, method: str, path: str, **kw: Any) -> Any:
        """Call the API; note when the toolkit rotated the tokens on the way."""
        assert self.client is not None
        before = await _load(self.client, s.key)
        try:
            return (await self.client.request(method, path, key=s.key, **kw)).data
        finally:
            after = await _load(self.client, s.key)
            if before and after and before.access_token != after.access_token:
                s.refreshed_at = time.time()

    # routes ---------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        s, _ = self.sessions.get(request)
        if self.client is None:
            return self.not_configured(request, s)
        tokens = await _load(self.client, s.key)
        if tokens is None:
            if s.reauthorize_url:
                return self.page(request, s, "reconnect.html", reconnect_url=s.reauthorize_url)
            return self.page(request, s, "home.html")
        try:
            account = await self.call(s, "GET", "/accounts")
            fields = await self.call(s, "GET", "/from-fields", params={"sort[createdOn]": "asc"})
        except ReauthorizationRequired as exc:
            # The grant is gone (refresh token expired or revoked): offer to reconnect.
            s.oauth = exc.authorization.to_dict()
            s.reauthorize_url = exc.url
            return self.page(request, s, "reconnect.html", reconnect_url=exc.url, reason=exc.reason)
        except APIError as exc:
            return self.page(
                request,
                s,
                "error.html",
                502,
                title="The API answered with an error",
                message=str(exc),
            )
        tokens = await _load(self.client, s.key)
        return self.page(
            request,
            s,
            "dashboard.html",
            account=account if isinstance(account, dict) else {},
            fields=fields if isinstance(fields, list) else [],
            expires_at=_clock(tokens.expires_at) if tokens else None,
            refreshed_at=_clock(s.refreshed_at),
        )

    async def connect(self, request: Request) -> Response:
        s, _ = self.sessions.get(request)
        if self.client is None:
            return self.not_configured(request, s)
        auth = self.client.start()
        s.oauth = auth.to_dict()  # the state and PKCE verifier stay on the server side
        return self.redirect(s, auth.url)

    async def callback(self, request: Request) -> Response:
        s, _ = self.sessions.get(request)
        if self.client is None:
            return self.not_configured(request, s)
        kept, s.oauth = s.oauth, None  # used once
        # The tokens go under a new session id, installed only on success (no fixation).
        fresh = Session(secrets.token_urlsafe(32))
        try:
            await self.client.handle_callback(request.url.query, kept, key=fresh.key)
        except AccessDenied:
            return self.page(request, s, "denied.html")
        except StateMismatch:
            return self.page(
                request,
                s,
                "error.html",
                400,
                title="This sign-in link is not for this browser",
                message="The answer from the provider does not match a connection started "
                "here (it may be old, or opened in another browser). Start again.",
            )
        except AuthorizationError as exc:
            return self.page(
                request, s, "error.html", 400, title="The connection failed", message=str(exc)
            )
        except APIError as exc:
            return self.page(
                request,
                s,
                "error.html",
                502,
                title="The provider refused the connection",
                message=str(exc),
            )
        self.sessions.replace(s, fresh)
        if await _load(self.client, s.key) is not None:
            # Connected again (e.g. after "Reconnect"): end the previous grant too.
            with contextlib.suppress(ClientError):
                await self.client.disconnect(key=s.key)
        fresh.flash("ok", "Your account is connected.")
        return self.redirect(fresh)

    async def add_from_field(self, request: Request) -> Response:
        s, _ = self.sessions.get(request)
        if self.client is None:
            return self.not_configured(request, s)
        form = await self.form(request, s)
        if form is None:
            s.flash("error", "The form expired; please try again.")
            return self.redirect(s)
        name, email = str(form.get("name", "")).strip(), str(form.get("email", "")).strip()
        try:
            await self.call(s, "POST", "/from-fields", json={"name": name, "email": email})
        except ReauthorizationRequired as exc:
            s.oauth, s.reauthorize_url = exc.authorization.to_dict(), exc.url
            return self.redirect(s)
        except APIError as exc:
            s.flash("error", f"Could not add {email or 'the address'}: {_api_message(exc)}")
            return self.redirect(s)
        s.flash("ok", f"Added {name} <{email}>.")
        return self.redirect(s)

    async def refresh(self, request: Request) -> Response:
        s, _ = self.sessions.get(request)
        if self.client is None:
            return self.not_configured(request, s)
        if await self.form(request, s) is None:
            s.flash("error", "The form expired; please try again.")
            return self.redirect(s)
        try:
            await self.client.refresh(key=s.key)
        except ReauthorizationRequired as exc:
            s.oauth, s.reauthorize_url = exc.authorization.to_dict(), exc.url
            return self.redirect(s)
        except ClientError as exc:
            s.flash("error", f"Refresh failed: {exc}")
            return self.redirect(s)
        s.refreshed_at = time.time()
        s.flash("ok", "New tokens received (the old refresh token no longer works).")
        return self.redirect(s)

    async def disconnect(self, request: Request) -> Response:
        s, _ = self.sessions.get(request)
        if self.client is None:
            return self.not_configured(request, s)
        if await self.form(request, s) is None:
            s.flash("error", "The form expired; please try again.")
            return self.redirect(s)
        try:
            await self.client.disconnect(key=s.key)  # RFC 7009 revocation, then forget
        except ClientError as exc:
            s.flash("error", f"Could not revoke the access at the provider: {exc}")
            return self.redirect(s)
        s.refreshed_at, s.reauthorize_url, s.oauth = None, None, None
        s.flash("ok", "Disconnected. MyTemplateMaker no longer has access to your account.")
        return self.redirect(s)

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")


async def _load(client: AsyncClient, key: str) -> TokenSet | None:
    return await asyncio.to_thread(client.store.load, key)


def _api_message(exc: APIError) -> str:
    detail = exc.message or exc.error_description or str(exc)
    problems = [f"{k}: {v}" for k, v in exc.context.items() if isinstance(v, str | int)]
    return f"{detail} ({'; '.join(problems)})" if problems else detail


def _clock(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%H:%M:%S", time.localtime(ts))


def _provider_label(provider: Provider | None) -> str:
    if provider is None:
        return "—"
    return {
        "getresponse": "GetResponse",
        "getresponse-max": f"GetResponse MAX ({provider.x_domain})",
    }.get(provider.name, f"consentry ({provider.authorize_url.rsplit('/', 1)[0]})")


class SecurityHeaders:
    """No scripts at all, no framing, no Referer (the callback URL carries the code)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CSP)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Frame-Options", "DENY")
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(config: Config | None = None) -> Starlette:
    """Build the Starlette application (uvicorn: ``--factory mytemplatemaker.app:create_app``)."""
    mtm = MyTemplateMaker(config or Config.from_env())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if mtm.client is not None:
            await mtm.client.aclose()

    app = Starlette(
        routes=[
            Route("/", mtm.home),
            Route("/connect", mtm.connect),
            Route("/gr_callback", mtm.callback),
            Route("/from-fields", mtm.add_from_field, methods=["POST"]),
            Route("/refresh", mtm.refresh, methods=["POST"]),
            Route("/disconnect", mtm.disconnect, methods=["POST"]),
            Route("/healthz", mtm.healthz),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ],
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders)],
    )

    return app
