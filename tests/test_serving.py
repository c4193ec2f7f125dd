"""The HTTP layer of ``consentry serve``: one write per response, and the cases where the
held-back response head must still go out (HEAD, pipelining, 100-continue, close)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn.server import ServerState

from consentry.serving import _Deferred, http_options
from tests.conftest import Server


def _connect(server: Server) -> socket.socket:
    u = urlsplit(server.url)
    return socket.create_connection((u.hostname or "127.0.0.1", u.port or 80), timeout=10)


def _read_responses(s: socket.socket, count: int, head_only: tuple[int, ...] = ()) -> list[bytes]:
    """Read ``count`` complete responses (Content-Length framed) off the socket; the
    responses whose index is in ``head_only`` answer a HEAD and have no body."""
    data = b""
    out: list[bytes] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        while len(out) < count:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                break
            length = 0
            for line in data[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(out) in head_only:
                length = 0
            if len(data) < end + 4 + length:
                break
            out.append(data[: end + 4 + length])
            data = data[end + 4 + length :]
        if len(out) == count:
            return out
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return out


def test_head_request_gets_its_head(server: Server) -> None:
    with _connect(server) as s:
        s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        (resp,) = _read_responses(s, 1, head_only=(0,))
    assert resp.startswith(b"HTTP/1.1 200 ")


def test_pipelined_requests_all_answered_in_order(server: Server) -> None:
    reqs = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /v3/from-fields HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    with _connect(server) as s:
        s.sendall(reqs)
        got = _read_responses(s, 4, head_only=(1,))
    assert len(got) == 4, got
    assert got[0].startswith(b"HTTP/1.1 200 ") and got[0].endswith(b'{"status":"ok"}')
    assert got[1].startswith(b"HTTP/1.1 200 ") and got[1].endswith(b"\r\n\r\n")
    assert got[2].startswith(b"HTTP/1.1 401 ") and b'"code":1014' in got[2]
    assert got[3].startswith(b"HTTP/1.1 200 ") and got[3].endswith(b'{"status":"ok"}')


def test_expect_100_continue_is_sent_before_the_body_arrives(server: Server) -> None:
    client = server.new_client()
    body = b"grant_type=client_credentials"
    import base64

    basic = base64.b64encode(f"{client.client_id}:{client.client_secret}".encode())
    with _connect(server) as s:
        s.sendall(
            b"POST /v3/token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + basic + b"\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        interim = s.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        s.sendall(body)
        (resp,) = _read_responses(s, 1)
    assert resp.startswith(b"HTTP/1.1 200 ") and b'"access_token"' in resp


def test_connection_close_still_delivers_the_response(server: Server) -> None:
    with _connect(server) as s:
        s.sendall(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b'{"status":"ok"}')


def test_small_response_is_one_segment(server: Server) -> None:
    """Head and body arrive together: the first recv already holds the whole response."""
    with _connect(server) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(20):
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            first = s.recv(65536)
            assert first.endswith(b'{"status":"ok"}'), first


def test_pipelined_lane_requests_waiting_and_not_stay_in_order(server: Server) -> None:
    """A token request (the lane finishes it in a task: it waits for the commit), then a
    lane GET and a page, pipelined in one send: answered in order, each once."""
    import base64

    client = server.new_client()
    basic = base64.b64encode(f"{client.client_id}:{client.client_secret}".encode())
    body = b"grant_type=client_credentials"
    token_request = (
        b"POST /v3/token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + basic + b"\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    reqs = (
        token_request
        + b"GET /v3/from-fields HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n\r\n"
        + token_request
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    with _connect(server) as s:
        s.sendall(reqs)
        got = _read_responses(s, 4)
    assert len(got) == 4, got
    assert got[0].startswith(b"HTTP/1.1 200 ") and b'"access_token"' in got[0]
    assert got[1].startswith(b"HTTP/1.1 401 ") and b'"code":1014' in got[1]
    assert got[2].startswith(b"HTTP/1.1 200 ") and b'"access_token"' in got[2]
    assert got[3].startswith(b"HTTP/1.1 200 ") and got[3].endswith(b'{"status":"ok"}')
    for r in got[:3]:
        assert b"\r\nx-request-id: " in r and b"\r\ndate: " in r


def test_lane_body_in_pieces_and_chunked_body_both_work(server: Server) -> None:
    import base64

    client = server.new_client()
    basic = base64.b64encode(f"{client.client_id}:{client.client_secret}".encode())
    head = (
        b"POST /v3/token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + basic + b"\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
    )
    body = b"grant_type=client_credentials"
    with _connect(server) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:7])
        time.sleep(0.2)
        s.sendall(body[7:])
        (first,) = _read_responses(s, 1)
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        s.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked)  # the ASGI way
        (second,) = _read_responses(s, 1)
    assert first.startswith(b"HTTP/1.1 200 ") and b'"access_token"' in first
    assert second.startswith(b"HTTP/1.1 200 ") and b'"access_token"' in second


def test_lane_request_with_connection_close_is_answered_then_closed(server: Server) -> None:
    with _connect(server) as s:
        s.sendall(
            b"GET /v3/from-fields HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Bearer nope\r\n\r\n"
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 401 ") and b"connection: close" in data.lower()


class _Recorder:
    """A transport that records what reaches it."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.calls: list[str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        self.calls.append("close")
        self.closing = True

    def abort(self) -> None:
        self.calls.append("abort")
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 7

    def set_protocol(self, protocol: object) -> None:
        self.calls.append("set_protocol")


def _held() -> tuple[_Recorder, _Deferred]:
    """A recording transport, and the deferring one over it on the running loop."""
    t = _Recorder()
    return t, _Deferred(t, asyncio.get_running_loop())


def test_writes_of_one_turn_leave_together_at_its_end() -> None:
    async def scenario() -> None:
        a, da = _held()
        b, db = _held()
        da.write(b"HTTP/1.1 200 OK\r\n\r\n")
        db.write(b"one")
        da.write(b"body")
        da.write(b"")
        assert a.sent == [] and b.sent == []  # nothing during the turn
        assert da.get_write_buffer_size() == 7 + len(b"HTTP/1.1 200 OK\r\n\r\nbody")
        await asyncio.sleep(0)
        assert a.sent == [b"HTTP/1.1 200 OK\r\n\r\nbody"]  # one write, in order
        assert b.sent == [b"one"]
        db.write(b"two")
        await asyncio.sleep(0)
        assert b.sent == [b"one", b"two"]  # the next turn schedules its own flush

    asyncio.run(scenario())


def test_close_sends_what_is_held_and_abort_drops_it() -> None:
    async def scenario() -> None:
        t, d = _held()
        d.write(b"last answer")
        d.close()
        assert t.sent == [b"last answer"] and t.calls == ["close"]
        await asyncio.sleep(0)
        assert t.sent == [b"last answer"]  # the scheduled flush finds nothing more

        t2, d2 = _held()
        d2.write(b"never")
        d2.abort()
        await asyncio.sleep(0)
        assert t2.sent == [] and t2.calls == ["abort"]

        t3, d3 = _held()
        d3.write(b"before the switch")
        d3.set_protocol(object())  # any other transport call: what is held goes first
        assert t3.sent == [b"before the switch"] and t3.calls == ["set_protocol"]

        t4, d4 = _held()
        d4.write(b"x")
        t4.closing = True  # the peer went away before the turn ended
        await asyncio.sleep(0)
        assert t4.sent == []

    asyncio.run(scenario())


def test_a_large_body_is_not_held_to_the_end_of_the_turn() -> None:
    async def scenario() -> None:
        t, d = _held()
        chunk = b"x" * 16384
        for _ in range(5):
            d.write(chunk)
        assert t.sent == [chunk * 5]  # over FLUSH_AT (64 KiB): sent at once
        d.write(b"tail")
        assert t.sent == [chunk * 5]
        await asyncio.sleep(0)
        assert t.sent == [chunk * 5, b"tail"]

    asyncio.run(scenario())


def test_requests_arriving_together_on_two_connections_each_get_one_whole_answer(
    server: Server,
) -> None:
    """Two keep-alive connections whose requests arrive together: both answered, each in one
    segment (head and body in the first recv), through the real server, whose transports
    hold writes to the end of the loop's turn."""
    conns = [_connect(server), _connect(server)]
    try:
        for _ in range(10):
            for s in conns:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            for s in conns:
                first = s.recv(65536)
                assert first.startswith(b"HTTP/1.1 200 ") and first.endswith(b'{"status":"ok"}')
    finally:
        for s in conns:
            s.close()


class _Wire(_Recorder):
    """An in-memory socket for one protocol instance."""

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5555)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _hello(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"hi"})  # type: ignore[operator]


def test_keep_alive_timeout_counts_from_the_last_response() -> None:
    """An idle connection is closed timeout_keep_alive seconds after its last response;
    requests in between push that back; a request still arriving is never cut off."""

    async def scenario() -> None:
        config = uvicorn.Config(
            _hello, **http_options(), timeout_keep_alive=0.3, log_config=None, access_log=False
        )
        config.load()
        proto = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
        wire = _Wire()
        proto.connection_made(wire)
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"

        async def ask() -> None:
            before = len(wire.sent)
            proto.data_received(request)
            for _ in range(100):
                await asyncio.sleep(0.001)
                if len(wire.sent) > before:
                    break
            assert wire.sent[-1].startswith(b"HTTP/1.1 200 ")

        await ask()
        await asyncio.sleep(0.2)
        await ask()  # 0.2 s idle: still open; the clock starts again
        await asyncio.sleep(0.2)
        assert not wire.closing  # 0.4 s since the first answer, 0.2 since the last
        await asyncio.sleep(0.2)
        assert wire.closing  # 0.4 s since the last answer
        assert wire.calls == ["close"]

        wire2 = _Wire()
        proto2 = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
        proto2.connection_made(wire2)
        proto2.data_received(request)
        await asyncio.sleep(0.01)
        proto2.data_received(b"GET / HTTP/1.1\r\nHost:")  # a request half-way in
        await asyncio.sleep(0.5)
        assert not wire2.closing
        proto2.data_received(b" x\r\n\r\n")
        await asyncio.sleep(0.01)
        assert len(wire2.sent) == 2 and not wire2.closing
        await asyncio.sleep(0.45)
        assert wire2.closing
        proto2.connection_lost(None)
        assert proto2._keepalive_timer is None

    asyncio.run(scenario())


class _OneHeader:
    """An app whose lane answers ``GET /h`` with the header under test (and two plain ones)."""

    header = (b"x", b"y")

    def lane_route(self, method: str, path: str) -> object:
        return "route" if path == "/h" else None

    def lane(self, route: object, scope: dict, body: bytes, reply: Any) -> None:  # type: ignore[type-arg]
        reply(200, [(b"Content-Type", b"text/plain"), self.header, (b"x-b", b"1")], b"ok")

    async def __call__(self, scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        raise AssertionError("the lane answers")


_NAMES = st.one_of(
    st.sampled_from([b"x-a", b"X-Mixed", b"bad name", b"a\r\nb", b"a:b", b"caf\xc3\xa9", b"t\tab"]),
    st.binary(min_size=1, max_size=6),
)
_VALUES = st.one_of(
    st.sampled_from([b"v", b"a\tb", b"a\r\nx-evil: 1", b"\x7f", b"\xff\xfe", b""]),
    st.binary(max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(name=_NAMES, value=_VALUES)
def test_a_lane_header_is_refused_exactly_when_uvicorn_would(name: bytes, value: bytes) -> None:
    """The lane checks response headers with byte tables built from uvicorn's two regexes;
    a header uvicorn would refuse becomes a 500 (no response splitting), any other is
    written as uvicorn writes it (name in lower case)."""
    from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE

    app = _OneHeader()
    app.header = (name, value)
    loop = asyncio.new_event_loop()
    try:
        config = uvicorn.Config(
            app, **http_options(), log_config=None, access_log=False, proxy_headers=False
        )
        config.load()
        proto = config.http_protocol_class(
            config=config, server_state=ServerState(), app_state={}, _loop=loop
        )
        wire = _Wire()
        proto.connection_made(wire)
        proto.data_received(b"GET /h HTTP/1.1\r\nHost: x\r\n\r\n")
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    (sent,) = wire.sent
    names = b"Content-Type" + name + b"x-b"
    refused = HEADER_RE.search(names) or HEADER_VALUE_RE.search(b"text/plain" + value + b"1")
    if refused:
        assert sent.startswith(b"HTTP/1.1 500 "), sent
        assert b"x-b" not in sent
    else:
        assert sent.startswith(b"HTTP/1.1 200 "), sent
        head = sent.split(b"\r\n\r\n", 1)[0]
        assert b"\r\n" + name.lower() + b": " + value + b"\r\n" in head + b"\r\n"
        assert b"\r\ncontent-type: text/plain\r\n" in head
        assert sent.endswith(b"\r\n\r\nok")
