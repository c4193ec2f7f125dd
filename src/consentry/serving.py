"""HTTP server settings of ``consentry serve``: a cap on the size of a request head.

uvicorn's httptools protocol buffers a request line and headers of any size: a client that
sends megabytes of header (or never ends one) holds that much memory per connection. Bodies
are capped by :func:`consentry.http.read_body`; this caps the head, so that an
unauthenticated flood of huge heads gets a 431 instead of exhausting memory.
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
        """Refuses a request head over ``MAX_REQUEST_HEAD`` bytes with 431 and hangs up."""

        _in_head = True
        _head_bytes = 0

        def on_message_begin(self) -> None:
            self._in_head = True
            self._head_bytes = 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

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
