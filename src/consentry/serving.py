"""HTTP server settings of ``consentry serve``: a cap on the size of a request head, and one
socket write per response.

uvicorn's httptools protocol buffers a request line and headers of any size: a client that
sends megabytes of header (or never ends one) holds that much memory per connection. Bodies
are capped by :func:`consentry.http.read_body`; this caps the head, so that an
unauthenticated flood of huge heads gets a 431 instead of exhausting memory.

uvicorn also writes a response's head and its body with two ``transport.write`` calls, and
uvloop sends each at once: two ``send`` system calls (and, without Nagle's delay, often two
TCP segments) for every small JSON answer. The socket write was the largest single item in
the bearer GET's profile. :class:`_Coalescing` holds the head until the body's first write
(or the end of the response) and sends both in one.
"""

from __future__ import annotations

from typing import Any

MAX_REQUEST_HEAD = 64 * 1024  # request line + headers; browsers and clients send < 16 KiB

_REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 31\r\n"
    b"connection: close\r\n\r\n"
    b"Request header fields too large"
)


def http_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` that bound the request head."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # no httptools: h11 enforces the same limit itself
        return {"http": "h11", "h11_max_incomplete_event_size": MAX_REQUEST_HEAD}

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """Refuses a request head over ``MAX_REQUEST_HEAD`` bytes with 431 and hangs up;
        writes each response's head together with its body."""

        _in_head = True
        _head_bytes = 0

        def on_message_begin(self) -> None:
            self._in_head = True
            self._head_bytes = 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()
            # Per cycle: with pipelined requests, self.cycle is already the next one when
            # an earlier cycle completes.
            cycle = self.cycle
            coalescing = _Coalescing(self.transport)
            cycle.transport = coalescing  # type: ignore[assignment]  # duck-typed
            completed = cycle.on_response

            def on_response() -> None:
                coalescing.flush()  # a HEAD response, or a body of zero bytes
                completed()

            cycle.on_response = on_response

        def data_received(self, data: bytes) -> None:
            counting = self._in_head
            super().data_received(data)
            # Only chunks that began and ended inside a head are counted: body bytes never
            # are, so the memory held is at most the limit plus two socket reads.
            if counting and self._in_head and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > MAX_REQUEST_HEAD:
                    self.transport.write(_REFUSAL)
                    self.transport.close()

    return {"http": BoundedHttpToolsProtocol}


class _Coalescing:
    """The transport as one response cycle sees it: the response head is held back and
    written with the next write (the body), so a small response is one ``send``.

    Anything but a ``write`` of more data (close, the end of the response, any other
    transport call) first flushes what is held. ``100 Continue`` is never held: the client
    waits for it before sending the body the application is waiting for."""

    __slots__ = ("_transport", "_held")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif data.startswith(b"HTTP/1.1 ") and not data.startswith(b"HTTP/1.1 100 "):
            self._held = data
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        self.flush()
        return getattr(self._transport, name)
