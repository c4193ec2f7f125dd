"""Rendering pages: one Jinja2 environment, autoescaped, and the headers every page carries."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TEMPLATES = Path(__file__).with_name("templates")
env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

# No inline script anywhere; framing forbidden (clickjacking, RFC 6819 §4.4.1.9).
# form-action must allow the consent form's redirect to the client's own site.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "script-src 'self'; form-action 'self' *; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

# Static files (CSS, JS) and served logos: may be cached, never sniffed, never framed.
ASSET_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def when(ts: int | None) -> str:
    """A Unix time as a short UTC date, the same on every page."""
    if ts is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def iso(ts: int | None) -> str:
    if ts is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


env.filters["when"] = when
env.filters["iso"] = iso


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    ctx: dict[str, Any] = {"request": request}
    if context:
        ctx.update(context)
    html = env.get_template(template).render(ctx)
    return HTMLResponse(html, status, headers={**PAGE_HEADERS, **(headers or {})})


def error_page(
    request: Request,
    status: int,
    title: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    context: dict[str, Any] | None = None,
) -> HTMLResponse:
    ctx = {"title": title, "message": message, **(context or {})}
    return render(request, "error.html", ctx, status, headers)


def redirect(url: str, status: int = 303) -> Response:
    """303 after a POST (RFC 9700 §4.11); never to a URL taken from the request."""
    return RedirectResponse(url, status, headers=PAGE_HEADERS)


class WithHeaders:
    """ASGI wrapper adding fixed headers to every response of an app (the static files)."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    out[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
