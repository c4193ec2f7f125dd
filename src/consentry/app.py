"""The ASGI application: routes of every layer, error rendering, request ids, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    generate_latest,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consentry import lane
from consentry.api.ratelimit import RateLimiter
from consentry.api.resources import get_account, list_from_fields, list_from_fields_fast
from consentry.api.routes import routes as api_routes
from consentry.config import Settings
from consentry.crypto import Keyring
from consentry.http import (
    JSON,
    NO_STORE,
    WHOLE_BODY,
    Answer,
    BodyTooLarge,
    dumps,
    error_response,
    json_headers,
)
from consentry.metrics import Metrics
from consentry.oauth.errors import (
    BAD_HEADERS,
    INTERNAL,
    NOT_FOUND,
    VALIDATION,
    ApiError,
    error_body,
    oauth_error,
)
from consentry.oauth.introspection import introspection_endpoint
from consentry.oauth.metadata import metadata_endpoint
from consentry.oauth.revocation import revocation_endpoint
from consentry.oauth.token import token_endpoint
from consentry.runtime import Runtime
from consentry.store.db import Database
from consentry.store.tokens import purge_all
from consentry.web.pages import error_page
from consentry.web.routes import routes as web_routes

log = logging.getLogger("consentry")
ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]
# The fast lane's way back to the connection: (status, headers, body) -> the status sent.
Reply = Callable[[int, list[tuple[bytes, bytes]], bytes], int]
FastPath = Callable[[Runtime, Scope], Answer | None]

# Paths answered with GetResponse JSON errors; everything else is a page.
API_PREFIXES = ("/v3", "/.well-known", "/healthz", "/readyz", "/metrics")


def is_api(path: str) -> bool:
    return path.startswith(API_PREFIXES)


class RequestContext:
    """Pure ASGI middleware: request id, access log, metrics, and last-resort 500s."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        routes: list[BaseRoute],
        handlers: dict[type[BaseException], ExceptionHandler],
        fast: dict[Callable[..., Any], FastPath] | None = None,
        eager: frozenset[Callable[..., Any]] = frozenset(),
    ) -> None:
        self.app = app
        # Plain functions that answer an endpoint's common call in the server's lane, or
        # return None for the endpoint to answer (see resources.list_from_fields_fast).
        self._fast = fast or {}
        # Endpoints the lane may step at once, outside any task (see ``lane``).
        self._eager = eager
        self.metrics = metrics
        # The fast lane: API routes with a fixed path, by (method, path) (see ``direct``).
        # HEAD is left to Starlette (it answers HEAD for GET routes). The first route for a
        # method and path wins, as in the router.
        self._direct: dict[tuple[str, str], Route] = {}
        for r in routes:
            if (
                isinstance(r, Route)
                and not r.param_convertors
                and r.path.startswith(("/v3/", "/.well-known/"))
            ):
                for method in r.methods or ():
                    if method != "HEAD":
                        self._direct.setdefault((method, r.path), r)
        self._handlers = handlers
        # Request ids: 32 hex digits, a random per-process half and a counter. Unique across
        # processes and requests without a getrandom() system call per request (uuid4 stood out in
        # the token endpoint profile). They only correlate logs; nothing secret.
        self._id_prefix = secrets.token_hex(8)
        self._id_counter = itertools.count(secrets.randbelow(1 << 32))

    def _handler(self, exc: Exception) -> ExceptionHandler:
        for cls in type(exc).__mro__:
            handler = self._handlers.get(cls)
            if handler is not None:
                return handler
        return _internal

    async def respond(self, route: Route, request: Request) -> Response:
        """The endpoint's response, or the registered handler's answer to its exception
        (looked up by the exception's class, as Starlette does; the 500 handler last)."""
        try:
            response: Response = await route.endpoint(request)
            return response
        except Exception as exc:
            return await self._handler(exc)(request, exc)

    async def direct(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        """Run an API endpoint straight from here, skipping Starlette's stack.

        For the API's fixed paths with an allowed method (not HEAD), the result is what
        Starlette's router, exception middleware and server-error middleware would give: the
        same endpoint, the same exception handlers, and the same 500 handler — without the
        exception middleware, a route scan with a regex per route and the per-request
        wrappers around the endpoint. (RequestContext sits outside Starlette's whole stack:
        see :class:`ConsentryApp`.)"""
        _enter(route, scope)
        request = Request(scope, receive, send)
        response = await self.respond(route, request)
        await response(scope, receive, send)

    def lane_route(self, method: str, path: str) -> Route | None:
        """The fast-lane route for a request, if it has one (see :mod:`consentry.lane`)."""
        return self._direct.get((method, path))

    def lane(
        self, route: Route, scope: Scope, body: bytes, reply: Reply
    ) -> asyncio.Task[None] | None:
        """Answer one request of the server's fast lane without ASGI messages.

        The same request id, endpoint, exception handlers, metrics and access log as
        ``__call__`` + ``direct``; the response goes to ``reply(status, headers, body)``
        instead of through ``send``. The endpoint runs at once, on the protocol's callback
        (an API endpoint on SQLite usually finishes without ever waiting: its reads are
        direct). If it has to wait (a write's commit, Redis), the rest runs as a task,
        returned so that the server can wait for it at shutdown."""
        rid = self._begin(scope)
        started = time.perf_counter()
        _enter(route, scope)
        rt = scope["app"].state.rt
        fast = self._fast.get(route.endpoint)
        if fast is not None:
            try:
                answer = fast(rt, scope)
            except Exception:  # it fails before it counts anything: the ordinary way answers
                answer = None
            if answer is not None:
                self._lane_send(scope, rid, started, *answer, reply)
                return None
        scope[WHOLE_BODY] = body
        request = Request(scope, _receive_once(body))
        return lane.run(
            self.respond(route, request),
            lambda response: self._lane_reply(scope, rid, started, response, reply),
            lambda exc: self._lane_crash(scope, rid, started, exc, reply),
            # Stepped at once only where nothing before a first wait needs a task: endpoints
            # that reach the database through run_read / run_write only, on direct SQLite
            # (reads on this thread, writes to the writer thread), with local counters. The
            # async engine's pool waits with asyncio.timeout(), which needs a task.
            eager=route.endpoint in self._eager and rt.db.direct and rt.limiter.local,
        )

    def _lane_reply(
        self, scope: Scope, rid: str, started: float, response: Response, reply: Reply
    ) -> asyncio.Task[None] | None:
        if type(response).__call__ is not Response.__call__ or response.background is not None:
            # A streaming or file response, or one with background work: through its own ASGI
            # call, collected (none of the fast lane's routes answers like this today).
            return lane.run(
                lane.collect(response, scope),
                lambda got: self._lane_send(scope, rid, started, *got, reply),
                lambda exc: self._lane_crash(scope, rid, started, exc, reply),
            )
        self._lane_send(
            scope,
            rid,
            started,
            response.status_code,
            response.raw_headers,
            bytes(response.body),
            reply,
        )
        return None

    def _lane_send(
        self,
        scope: Scope,
        rid: str,
        started: float,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        reply: Reply,
    ) -> None:
        status = reply(status, [*headers, (b"x-request-id", rid.encode())], body)
        self._finish(scope, rid, status, started)

    def _lane_crash(
        self, scope: Scope, rid: str, started: float, exc: BaseException, reply: Reply
    ) -> None:
        # What uvicorn does when an ASGI app raises before its response started.
        logging.getLogger("uvicorn.error").error("Exception in ASGI application\n", exc_info=exc)
        reply(500, list(lane.SERVER_ERROR_HEADERS), b"Internal Server Error")
        self._finish(scope, rid, 500, started)

    def route_of(self, scope: Scope) -> str:
        """The route template (not the raw path), so metrics labels stay bounded.

        Starlette's router leaves the route it dispatched to in ``scope["route"]``; reading
        it back costs nothing, where matching every route again cost a regex per route per
        request. A partial match (wrong method: the 405) counts as unmatched, as before."""
        route = scope.get("route")
        if route is None:
            return "unmatched"
        methods = getattr(route, "methods", None)
        if methods is not None and scope["method"] not in methods:
            return "unmatched"
        return str(getattr(route, "path", "other"))

    def new_request_id(self) -> str:
        return f"{self._id_prefix}{next(self._id_counter) & 0xFFFFFFFFFFFFFFFF:016x}"

    def _begin(self, scope: Scope) -> str:
        rid = self.new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        return rid

    def _finish(self, scope: Scope, rid: str, status: int, started: float) -> None:
        route = self.route_of(scope)
        elapsed = time.perf_counter() - started
        self.metrics.http.observe(scope["method"], route, str(status), elapsed)
        if log.isEnabledFor(logging.INFO):
            # Paths only: no query string (it may carry state), never bodies or headers.
            log.info(
                json.dumps(
                    {
                        "uuid": rid,
                        "method": scope["method"],
                        "path": scope["path"][:200],
                        "status": status,
                        "ms": round(elapsed * 1000, 2),
                    }
                )
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = self._begin(scope)
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            direct = self._direct.get((scope["method"], scope["path"]))
            if direct is not None:
                await self.direct(direct, scope, receive, send_wrapper)
            else:
                await self.app(scope, receive, send_wrapper)
        finally:
            self._finish(scope, rid, status, started)


def _enter(route: Route, scope: Scope) -> None:
    """What Starlette's router leaves in the scope for the route it dispatches to."""
    scope["route"] = route
    scope["endpoint"] = route.endpoint
    scope["path_params"] = {}


def _receive_once(body: bytes) -> Receive:
    """An ASGI ``receive`` for a request whose whole body has arrived."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if not is_api(request.url.path):
        return error_page(request, exc.http_status, "Request failed", exc.message)
    return error_response(exc, request)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not is_api(request.url.path):
        title = "Page not found" if exc.status_code == 404 else "Request failed"
        return error_page(request, exc.status_code, title, str(exc.detail))
    if exc.status_code == 404:
        err = ApiError(NOT_FOUND, "Resource not found", {"path": request.url.path[:200]})
    elif exc.status_code == 405:
        err = ApiError(VALIDATION, f"Method {request.method} is not allowed here", http_status=405)
        err.headers.update(exc.headers or {})
    else:
        err = ApiError(VALIDATION, str(exc.detail), http_status=exc.status_code)
    return error_response(err, request)


async def _too_large(request: Request, exc: Exception) -> Response:
    limit = request.app.state.rt.settings.max_body_bytes
    msg = f"The request body is larger than {limit} bytes"
    if not is_api(request.url.path):
        return error_page(request, 413, "Request too large", msg)
    err = oauth_error("invalid_request", msg) if "/token" in request.url.path else None
    if err is None:
        err = ApiError(VALIDATION, msg)
    err.http_status = 413
    return error_response(err, request)


def database_unavailable(exc: BaseException) -> bool:
    """Whether an exception means the database cannot be reached right now."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    transient = (
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.TimeoutError,  # pool exhausted while the database hangs
        ConnectionError,
        TimeoutError,
        OSError,
        asyncpg.PostgresConnectionError,
        asyncpg.CannotConnectNowError,
        asyncpg.InterfaceError,
        asyncpg.TooManyConnectionsError,  # the server is full: as unavailable as down
    )
    seen: BaseException | None = exc
    for _ in range(5):  # the driver's error is often wrapped
        if seen is None:
            return False
        if isinstance(seen, transient):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _internal(request: Request, exc: Exception) -> Response:
    rid = request.scope.get("state", {}).get("request_id", "")
    if database_unavailable(exc):
        # Nothing was committed: every write is one transaction, rolled back on error.
        log.warning(
            json.dumps({"uuid": rid, "event": "database_unavailable", "error": type(exc).__name__})
        )
        if not is_api(request.url.path):
            page = error_page(
                request, 503, "Temporarily unavailable", "Please try again in a moment."
            )
            page.headers["Retry-After"] = "1"
            return page
        err = ApiError(
            INTERNAL,
            "The service is temporarily unavailable, retry shortly",
            http_status=503,
            headers={"Retry-After": "1"},
        )
        return error_response(err, request)
    log.error("unhandled error uuid=%s: %s", rid, type(exc).__name__, exc_info=exc)
    if not is_api(request.url.path):
        return error_page(
            request, 500, "Something went wrong", f"The error was logged with id {rid}."
        )
    return error_response(ApiError(INTERNAL, "Internal error, reported with this uuid"), request)


async def purge_forever(rt: Runtime) -> None:
    """Delete expired rows in small batches, forever, between requests (SPEC §2 `purge`)."""
    interval = rt.settings.purge_interval
    # Nodes started together should not all purge at the same moment.
    await asyncio.sleep(interval * (0.5 + secrets.randbelow(1000) / 1000))
    while True:
        try:
            total = await purge_all(rt.db, rt.settings.purge_batch)
            if total:
                log.info(json.dumps({"event": "purge", "rows": total}))
        except Exception as exc:  # a failed round is retried at the next interval
            log.warning(json.dumps({"event": "purge_failed", "error": type(exc).__name__}))
        await asyncio.sleep(interval)


def create_app(settings: Settings) -> ConsentryApp:
    db = Database(settings)
    metrics = Metrics()
    metrics.watch_sqlite_writer(db.writer_stats)  # nothing on PostgreSQL
    rt = Runtime(
        metrics=metrics,
        settings=settings,
        db=db,
        keys=Keyring(settings.secret_key),
        limiter=RateLimiter(
            per_frame=settings.rate_limit_per_frame,
            frame_seconds=settings.rate_limit_frame,
            per_second=settings.rate_limit_per_second,
            concurrent=settings.rate_limit_concurrent,
            redis_url=settings.redis_url,
        ),
    )

    async def healthz(request: Request) -> Response:
        return JSON({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            async with rt.db.read() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # the database is what readiness means here
            log.warning("readiness check failed: %s", type(exc).__name__)
            return JSON({"status": "unavailable", "database": "unreachable"}, 503)
        return JSON({"status": "ok", "database": "ok"})

    async def metrics_endpoint(request: Request) -> Response:
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [
        Route("/v3/token", token_endpoint, methods=["POST"]),
        Route("/v3/token/revoke", revocation_endpoint, methods=["POST"]),
        Route("/v3/token/introspect", introspection_endpoint, methods=["POST"]),
        Route("/.well-known/oauth-authorization-server", metadata_endpoint, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        *api_routes,
        *web_routes,
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        purger = None
        if settings.purge_interval > 0:
            purger = asyncio.create_task(purge_forever(rt), name="consentry-purge")
        # Everything loaded so far (modules, SQLAlchemy's metadata, templates, ~100,000
        # objects) lives as long as the process: out of the cyclic collector's sight, a full
        # collection walks only what requests create (a full one took tens of ms and showed
        # in the p99 latency). Reference counting still frees all of it as usual.
        gc.collect()
        gc.freeze()
        yield
        if purger is not None:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
        await rt.limiter.close()
        await rt.db.dispose()

    handlers: dict[type[BaseException], ExceptionHandler] = {
        ApiError: _api_error,
        HTTPException: _http_error,
        BodyTooLarge: _too_large,
        Exception: _internal,
    }
    app = ConsentryApp(routes=routes, exception_handlers=dict(handlers), lifespan=lifespan)
    app.state.rt = rt
    app.state.metrics = metrics
    app.context = RequestContext(
        app.stack,
        metrics=metrics,
        routes=routes,
        handlers=handlers,
        fast={list_from_fields: list_from_fields_fast},
        eager=frozenset(
            {
                token_endpoint,
                introspection_endpoint,
                revocation_endpoint,
                list_from_fields,
                get_account,
            }
        ),
    )
    return app


class ConsentryApp(Starlette):
    """Starlette with :class:`RequestContext` outside its whole middleware stack.

    The fast lane then skips Starlette's server-error middleware too (it handles every
    exception itself); for everything else the order is RequestContext, then Starlette's
    server-error middleware, exception middleware and router, so a 500 is rendered by the
    same handler and still reaches uvicorn's log."""

    context: RequestContext

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        await self.context(scope, receive, send)

    def lane_route(self, method: str, path: str) -> Route | None:
        return self.context.lane_route(method, path)

    def lane(
        self, route: Route, scope: Scope, body: bytes, reply: Reply
    ) -> asyncio.Task[None] | None:
        scope["app"] = self
        return self.context.lane(route, scope, body, reply)

    def protocol_error(self, status: int, message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """The headers and JSON body for a request the HTTP layer refuses before any route
        sees it (not HTTP/1.1 it can parse: 400; a head over the server's cap: 431): the
        documented error body (SPEC 1.4, code 1021 with RFC 6749's ``invalid_request``,
        since the request may have been meant for the token endpoint) with the no-store
        headers ``error_response`` gives it, its ``uuid`` logged with the refusal."""
        rid = self.context.new_request_id()
        err = ApiError(BAD_HEADERS, message, {}, status, "invalid_request")
        log.warning(json.dumps({"uuid": rid, "event": "http_refused", "status": status,
                                "message": message}))
        body = dumps(error_body(err, rid, self.state.rt.settings.docs_url))
        return json_headers(len(body), NO_STORE), body

    async def stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        await self.middleware_stack(scope, receive, send)
