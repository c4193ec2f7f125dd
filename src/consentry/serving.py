"""HTTP server settings of ``consentry serve``: a cap on the size of a request head, and
responses written at the end of the event loop's turn.

uvicorn's httptools protocol buffers a request line and headers of any size: a client that
sends megabytes of header (or never ends one) holds that much memory per connection. Bodies
are capped by :func:`consentry.http.read_body`; this caps the head, so that an
unauthenticated flood of huge heads gets a 431 instead of exhausting memory. That 431, and
the 400 for bytes the HTTP parser refuses (uvicorn's plain-text "Invalid HTTP request
received."), carry the documented JSON error body like every other error (code 1021).

uvloop sends each ``transport.write`` at once, with its own ``send`` system call: uvicorn's
head and body of one response were two (and, without Nagle's delay, often two TCP segments),
and the answers to the requests that arrived together went out one by one, each between
two requests' work. On a client on the same host (a local proxy, the benchmark's wrk) every
such send wakes the client again, and on loopback that wake-up is paid by the sender: it was
the largest item of the bearer GET's CPU profile (``perf``: 14 % under wrk, in the send's
``sock_def_readable``). :class:`_Deferred` holds what a connection writes until the end of
the loop's turn and then sends it in one write, so one response is one ``send`` and the
answers of one turn leave together.
"""

from __future__ import annotations

from typing import Any

from consentry.lane import SERVER_ERROR_HEADERS as _SERVER_ERROR

MAX_REQUEST_HEAD = 64 * 1024  # request line + headers; browsers and clients send < 16 KiB
# Largest request body the fast lane takes (token requests are a few hundred bytes); bigger
# ones go through ASGI, where the configured body limit applies as always.
LANE_MAX_BODY = 16 * 1024

_REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 31\r\n"
    b"connection: close\r\n\r\n"
    b"Request header fields too large"
)


def http_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``: the bounded head, one write per response, and
    the fast lane for the API's fixed-path routes."""
    try:
        import httptools
        from uvicorn.protocols.http.httptools_impl import (
            HEADER_RE,
            HEADER_VALUE_RE,
            STATUS_LINE,
            HttpToolsProtocol,
        )
    except ImportError:  # no httptools: h11 enforces the same limit itself
        return {"http": "h11", "h11_max_incomplete_event_size": MAX_REQUEST_HEAD}

    name_ok = bytes(b for b in range(256) if not HEADER_RE.match(bytes([b])))
    value_ok = bytes(b for b in range(256) if not HEADER_VALUE_RE.match(bytes([b])))

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """Refuses a request head over ``MAX_REQUEST_HEAD`` bytes with 431 and hangs up;
        writes each response's head together with its body; answers fast-lane requests
        without an ASGI cycle."""

        _in_head = True
        _head_bytes = 0
        _lane: Any = None  # the route, between a lane request's head and its end
        _lane_body: list[bytes]

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # The lane needs consentry's app itself (uvicorn wraps it only for trace logs).
            self._lane_app = self.app if hasattr(self.app, "lane_route") else None

        def connection_made(self, transport: Any) -> None:
            # Duck-typed: uvicorn's protocol only calls transport methods on it.
            super().connection_made(_Deferred(transport, self.loop))  # type: ignore[arg-type]

        # The keep-alive timeout, without a timer per request. uvicorn cancels its timer
        # when a request's data arrives and starts a new one (call_later) when the response
        # is done: two timer operations per request, 2.4 µs of a bearer GET's ~80. Here a
        # connection notes when it went idle, and one timer, started when it first goes
        # idle, checks at its due time: idle for the whole timeout, it closes (uvicorn's
        # handler); idle for less, the timer waits out the rest; busy, it stops, and the
        # next response starts it again. The same rule: closed after timeout_keep_alive
        # seconds without a request, never while one is being read or answered.
        _idle_since: float | None = None
        _keepalive_timer: Any = None

        def _unset_keepalive_if_required(self) -> None:
            self._idle_since = None  # busy: data of a request arrived

        def on_response_complete(self) -> None:
            # uvicorn's, with the idle mark in place of the per-request timer.
            self.server_state.total_requests += 1
            if self.transport.is_closing():
                return
            self._idle_since = None
            self.flow.resume_reading()
            if self.pipeline:
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
                return
            self._idle_since = self.loop.time()
            if self._keepalive_timer is None:
                self._keepalive_timer = self.loop.call_later(
                    self.timeout_keep_alive, self._keepalive_due
                )

        def _keepalive_due(self) -> None:
            self._keepalive_timer = None
            idle_since = self._idle_since
            if idle_since is None or self.transport.is_closing():
                return
            left = idle_since + self.timeout_keep_alive - self.loop.time()
            if left > 0:
                self._keepalive_timer = self.loop.call_later(left, self._keepalive_due)
            else:
                self.timeout_keep_alive_handler()

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            timer = self._keepalive_timer
            if timer is not None:
                self._keepalive_timer = None
                timer.cancel()

        def on_message_begin(self) -> None:
            self._in_head = True
            self._head_bytes = 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_head = False
            route = self._lane_route()
            if route is not None:
                self._lane = route
                self._lane_body = []
                # What uvicorn's other callbacks (disconnect, shutdown, the next pipelined
                # request) look at while this request is being answered.
                self.cycle = _LaneCycle()  # type: ignore[assignment]
                return
            super().on_headers_complete()

        def _lane_route(self) -> Any:
            """The request's fast-lane route, or None for uvicorn's usual ASGI cycle.

            Only a plain keep-alive HTTP/1.1 request to one of the API's fixed paths, with
            no body or a small Content-Length one, on a connection with nothing else in
            flight: everything else (pipelined behind a pending response, 100-continue,
            upgrades, chunked bodies, escaped paths, a client not reading its responses)
            takes the ASGI path, whose rules stay the reference."""
            app = self._lane_app
            parser = self.parser
            cycle = self.cycle
            if (
                app is None
                or self.pipeline
                or (cycle is not None and not cycle.response_complete)
                or self.expect_100_continue
                or self.flow.write_paused
                or self.access_log
                or self.limit_concurrency is not None
                or self.root_path
                or parser.should_upgrade()
                or not parser.should_keep_alive()
                or parser.get_http_version() != "1.1"
            ):
                return None
            try:
                parsed = httptools.parse_url(self.url)
                raw_path = parsed.path
                path = raw_path.decode("ascii")
                method = parser.get_method().decode("ascii")
            except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
                return None
            if "%" in path:
                return None
            route = app.lane_route(method, path)
            if route is None:
                return None
            for name, value in self.headers:
                if name == b"content-length":
                    if not value.isdigit() or int(value) > LANE_MAX_BODY:
                        return None
                elif name == b"transfer-encoding":
                    return None
            scope = self.scope
            scope["method"] = method
            scope["path"] = path
            scope["raw_path"] = raw_path
            scope["query_string"] = parsed.query or b""
            return route

        def on_body(self, body: bytes) -> None:
            if self._lane is not None:
                self._lane_body.append(body)  # at most LANE_MAX_BODY: Content-Length framed
                return
            super().on_body(body)

        def on_message_complete(self) -> None:
            route = self._lane
            if route is None:
                super().on_message_complete()
                return
            self._lane = None
            body = b"".join(self._lane_body)
            self._lane_body = []
            cycle = self.cycle

            def reply(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
                return self._lane_reply(cycle, status, headers, body)  # type: ignore[arg-type]

            task = self._lane_app.lane(route, self.scope, body, reply)  # type: ignore[union-attr]
            if task is not None:  # it waits for something: shut down only once it is done
                task.add_done_callback(self.tasks.discard)
                self.tasks.add(task)

        def _lane_reply(
            self, cycle: _LaneCycle, status: int, headers: list[tuple[bytes, bytes]], body: bytes
        ) -> int:
            """Write one fast-lane response (head and body in one write); the status sent."""
            if cycle.response_complete:
                return status
            names, values = _split(headers)
            joined = b"".join(names)
            # uvicorn's two header regexes, as byte tables: what is left after deleting the
            # allowed bytes is what the regex would have found (tests/test_serving.py).
            if joined.translate(None, name_ok) or b"".join(values).translate(None, value_ok):
                # As uvicorn refuses such a header (response splitting): a 500 instead.
                self.logger.error("Invalid HTTP header in a response to %s", self.scope["path"])
                status, headers, body = 500, list(_SERVER_ERROR), b"Internal Server Error"
                names, values = _split(headers)
                joined = b"".join(names)
            cycle.response_complete = True
            if cycle.disconnected:
                return status
            keep_alive = cycle.keep_alive
            if not joined.islower():  # uvicorn writes the names in lower case
                names = tuple([name.lower() for name in names])
            has_close = False
            if b"connection" in names:
                for name, value in zip(names, values, strict=True):
                    if name == b"connection" and b"close" in value.lower():
                        keep_alive = False
                        has_close = True
            content = [STATUS_LINE[status], _default_block(self.server_state.default_headers)]
            if names:
                content += (b"\r\n".join(map(b": ".join, zip(names, values, strict=True))), b"\r\n")
            has_length = b"content-length" in names
            if status in (204, 304):
                body = b""
            elif not has_length:
                content += (b"content-length: ", str(len(body)).encode(), b"\r\n")
            if not keep_alive and not has_close:  # as uvicorn: said once
                content.append(b"connection: close\r\n")
            content += (b"\r\n", body)
            self.transport.write(b"".join(content))
            if not keep_alive:
                self.transport.close()
            self.on_response_complete()
            return status

        def data_received(self, data: bytes) -> None:
            counting = self._in_head
            super().data_received(data)
            # Only chunks that began and ended inside a head are counted: body bytes never
            # are, so the memory held is at most the limit plus two socket reads.
            if counting and self._in_head and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > MAX_REQUEST_HEAD:
                    self._refuse(431, f"Request header fields too large (at most "
                                 f"{MAX_REQUEST_HEAD} bytes of request line and headers)")

        def send_400_response(self, msg: str) -> None:
            # uvicorn's answer to bytes its parser refuses (a malformed request line, header
            # or framing: "Invalid HTTP request received."), as the documented error body.
            self._refuse(400, msg.rstrip("."))

        def _refuse(self, status: int, message: str) -> None:
            """Answer a request no route saw with ``status`` and hang up: consentry's JSON
            error body (``ConsentryApp.protocol_error``), plain text for another app."""
            app = self._lane_app
            if app is None or not hasattr(app, "protocol_error"):
                if status == 431:
                    self.transport.write(_REFUSAL)
                    self.transport.close()
                else:
                    super().send_400_response(message + ".")
                return
            try:
                headers, body = app.protocol_error(status, message)
            except Exception:  # noqa: BLE001 - the refusal itself must not fail
                self.logger.exception("Could not render a %d refusal", status)
                body = b'{"httpStatus":%d,"code":1021}' % status
                headers = [(b"content-length", b"%d" % len(body)),
                           (b"content-type", b"application/json")]
            content = [STATUS_LINE[status], _default_block(self.server_state.default_headers)]
            content += [name + b": " + value + b"\r\n" for name, value in headers]
            content += (b"connection: close\r\n\r\n", body)
            self.transport.write(b"".join(content))
            self.transport.close()

    return {"http": BoundedHttpToolsProtocol}


def _split(
    headers: list[tuple[bytes, bytes]],
) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """Header names and values, as two tuples."""
    if not headers:
        return (), ()
    names, values = zip(*headers, strict=True)
    return names, values


# uvicorn's default headers (the date, configured ones) as one block, made again only when
# uvicorn replaces its list (once a second, for the date).
_defaults: list[Any] = [None, b""]


def _default_block(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    if default_headers is not _defaults[0]:
        block = b"".join(name + b": " + value + b"\r\n" for name, value in default_headers)
        _defaults[:] = [default_headers, block]
    return _defaults[1]  # type: ignore[no-any-return]


class _NoEvent:
    """uvicorn sets a cycle's message event on disconnect; the lane waits on none."""

    __slots__ = ()

    def set(self) -> None:
        pass


class _LaneCycle:
    """The stand-in for uvicorn's cycle while a fast-lane request is answered."""

    __slots__ = ("response_complete", "disconnected", "keep_alive")
    message_event = _NoEvent()

    def __init__(self) -> None:
        self.response_complete = False
        self.disconnected = False
        self.keep_alive = True  # uvicorn's shutdown() turns it off: close after the response


class _Deferred:
    """A connection's transport whose writes are held until the end of the loop's turn.

    The first write of a turn schedules the flush (``call_soon``: it runs after the I/O
    callbacks and tasks already due), which sends everything held in one ``write``, in the
    order written. ``close`` (and ``write_eof``) sends what is held first, as a transport's
    close does; ``abort`` drops it; more than ``FLUSH_AT`` bytes held are sent at once, so a
    large or streamed body never piles up. Any other transport call sends what is held
    first too, except the few that do not touch the stream (``is_closing``,
    ``get_extra_info``, pausing and resuming reads), which go straight through. A ``100
    Continue`` is held only until the turn ends: the application waits for the body, and
    the turn ends with that wait."""

    __slots__ = ("_transport", "_loop", "_held", "_size")

    FLUSH_AT = 64 * 1024

    def __init__(self, transport: Any, loop: Any) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        held = self._held
        if not held:
            self._loop.call_soon(self.flush)
        held.append(data)
        self._size += len(data)
        if self._size > self.FLUSH_AT:
            self.flush()

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Send what is held (nothing, if it was sent already or the peer is gone)."""
        held = self._held
        if not held:
            return
        data = held[0] if len(held) == 1 else b"".join(held)
        held.clear()
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held.clear()
        self._size = 0
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return int(self._transport.get_write_buffer_size()) + self._size

    def is_closing(self) -> bool:
        return bool(self._transport.is_closing())

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def __getattr__(self, name: str) -> Any:
        self.flush()
        return getattr(self._transport, name)
