"""The application alone, without uvicorn: ``python -m bench.inprocess OP [N]``.

Builds consentry's ASGI app on a fresh SQLite file (or ``--database-url``), creates a
developer, a user, a confidential client and an access token, then calls the app directly
with ASGI scopes — 32 requests in flight, as wrk's 32 connections — and prints the CPU time
per request of the whole process (the event loop and the SQLite writer thread).

``--callgrind`` runs it twice under ``valgrind --tool=callgrind`` (N and 3N requests) and
prints the instructions per request: the difference of the two totals over the difference
of the request counts, so start-up is cancelled out. Instruction counts do not move with
the machine's load, which makes them the number to compare between two commits on a busy
machine (``PYTHONPATH=<other checkout>/src python -m bench.inprocess --callgrind OP``).

``--server`` drives the app through ``consentry serve``'s own uvicorn protocol (request bytes
in, response bytes out, over 32 in-memory connections) instead of calling it as ASGI: what the
server costs without the sockets, its lane and fast paths included.

OP: client_credentials, introspection, bearer_get, authorize (GET with remembered consent),
refresh_token (rotation; a pool of refresh tokens is minted first, outside the timing),
hello (the benchmark's ceiling, ``bench.ceiling``'s Starlette hello-world, no database: what
the same driver costs for the stack alone, to subtract from the others).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.appdata import fresh_app, new_code, seed

OPS = ("client_credentials", "introspection", "bearer_get", "authorize", "refresh_token", "hello")
Scope = dict[str, Any]


class _Transport:
    """An in-memory transport for one protocol instance: what it writes is kept."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.waiter: asyncio.Future[None] | None = None
        self.closing = False

    def write(self, data: bytes) -> None:
        self.out.append(data)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5555)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def server_caller(app: Any, connections: int = 32) -> Any:
    """A ``call`` that goes through consentry serve's uvicorn protocol class."""
    import uvicorn
    from uvicorn.server import ServerState

    from consentry.serving import http_options

    config = uvicorn.Config(app, **http_options(), access_log=False, log_config=None,
                            proxy_headers=False, server_header=False, log_level="warning")
    config.load()
    state = ServerState()
    free: asyncio.Queue[tuple[Any, _Transport]] = asyncio.Queue()
    for _ in range(connections):
        transport = _Transport()
        proto = config.http_protocol_class(config=config, server_state=state, app_state={})
        proto.connection_made(transport)
        free.put_nowait((proto, transport))

    async def call(method: str, path: str, headers: list[tuple[bytes, bytes]],
                   body: bytes = b"", query: bytes = b"") -> tuple[int, bytes]:
        target = path.encode() + (b"?" + query if query else b"")
        head = [method.encode() + b" " + target + b" HTTP/1.1", b"host: 127.0.0.1:8000"]
        head += [name + b": " + value for name, value in headers]
        if body:
            head.append(b"content-length: " + str(len(body)).encode())
        proto, transport = await free.get()
        try:
            transport.waiter = asyncio.get_running_loop().create_future()
            proto.data_received(b"\r\n".join(head) + b"\r\n\r\n" + body)
            if not transport.out:
                await transport.waiter
            raw = b"".join(transport.out)
            transport.out.clear()
        finally:
            free.put_nowait((proto, transport))
        status = int(raw.split(b" ", 2)[1])
        return status, raw.split(b"\r\n\r\n", 1)[1]

    return call


def asgi_caller(app: Any) -> Any:
    """A ``call`` that hands the app an ASGI scope directly (no server protocol)."""

    async def call(method: str, path: str, headers: list[tuple[bytes, bytes]],
                   body: bytes = b"", query: bytes = b"") -> tuple[int, bytes]:
        scope: Scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": query, "root_path": "",
            "headers": [(b"host", b"127.0.0.1:8000"), *headers],
            "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 8000),
        }
        messages: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await app(scope, receive, send)
        return messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:])

    return call


async def _timed(one: Any, ok: int, n: int) -> float:
    """CPU seconds per request of ``n`` calls of ``one``, 32 in flight, after a warm-up."""
    for _ in range(50):  # warm: compiled statements, caches
        status, raw = await one()
        assert status == ok, (status, raw[:200])
    sem = asyncio.Semaphore(32)

    async def limited() -> None:
        async with sem:
            got, body = await one()
            assert got == ok, (got, body[:200])

    cpu = time.process_time()
    await asyncio.gather(*(limited() for _ in range(n)))
    return (time.process_time() - cpu) / n


async def drive_hello(n: int, server: bool = False) -> float:
    """The ceiling's app through the same driver (``server_caller`` or ``asgi_caller``)."""
    from bench.ceiling import app

    call = server_caller(app) if server else asgi_caller(app)
    return await _timed(lambda: call("GET", "/", []), 200, n)


async def drive(op: str, n: int, database_url: str, server: bool = False) -> float:
    if op == "hello":
        return await drive_hello(n, server)
    from consentry.store import tokens
    from consentry.web import session as sessions

    env = {
        "CONSENTRY_RATE_LIMIT_PER_SECOND": "1000000",
        "CONSENTRY_RATE_LIMIT_PER_FRAME": "1000000000",
        "CONSENTRY_RATE_LIMIT_CONCURRENT": "100000",
        "CONSENTRY_TOKEN_RATE_LIMIT_PER_SECOND": "0",
    }
    # Anything else from the environment (CONSENTRY_DB_POOL_SIZE, ...), for experiments.
    env |= {k: v for k, v in os.environ.items() if k.startswith("CONSENTRY_") and k not in env}
    app = fresh_app(database_url, env, log_level="warning")
    rt = app.state.rt
    seeded = await seed(rt)
    client_id, secret, user, client_pk = (
        seeded.client_id, seeded.secret, seeded.user, seeded.client_pk
    )
    code = await new_code(rt, seeded)

    call = server_caller(app) if server else asgi_caller(app)
    basic = [(b"authorization", b"Basic " + base64.b64encode(f"{client_id}:{secret}".encode()))]
    form = [(b"content-type", b"application/x-www-form-urlencoded")]
    status, raw = await call("POST", "/v3/token", basic + form,
                             b"grant_type=authorization_code&code=" + code.encode())
    assert status == 200, raw
    access = json.loads(raw)["access_token"].encode()
    cookie = b""
    if op == "authorize":
        s = await sessions.create(rt, user)
        await rt.db.run_write(tokens.upsert_consent, user, client_pk, None, int(time.time()))
        cookie = b"consentry_session=" + s.raw_id.encode()
    refresh_pool: list[bytes] = []
    if op == "refresh_token":
        # Single-use: a pool minted before the measured requests, through the real code
        # exchange. Its size does not depend on N below 1,540, so that --callgrind's two runs
        # (N and 3N, N <= 500) mint the same number and the difference cancels it.
        for _ in range(max(1600, n + 60)):
            got, raw = await call("POST", "/v3/token", basic + form,
                                  b"grant_type=authorization_code&code="
                                  + (await new_code(rt, seeded)).encode())
            assert got == 200, raw
            refresh_pool.append(json.loads(raw)["refresh_token"].encode())
    requests = {
        "refresh_token": lambda: call("POST", "/v3/token", basic + form,
                                      b"grant_type=refresh_token&refresh_token="
                                      + refresh_pool.pop()),
        "client_credentials": lambda: call("POST", "/v3/token", basic + form,
                                           b"grant_type=client_credentials"),
        "introspection": lambda: call("POST", "/v3/token/introspect", basic + form,
                                      b"token=" + access),
        "bearer_get": lambda: call("GET", "/v3/from-fields",
                                   [(b"authorization", b"Bearer " + access)]),
        "authorize": lambda: call("GET", "/oauth2_authorize.html", [(b"cookie", cookie)],
                                  query=f"client_id={client_id}&response_type=code".encode()),
    }
    per = await _timed(requests[op], 302 if op == "authorize" else 200, n)
    await rt.db.dispose()
    return per


def callgrind(op: str, n: int, server: bool = False) -> float:
    totals = []
    for count in (n, 3 * n):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "callgrind.out"
            r = subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                 sys.executable, "-m", "bench.inprocess", op, str(count),
                 *(["--server"] if server else [])],
                capture_output=True, text=True, check=True,
            )
            found = re.search(r"Collected : (\d+)", r.stderr)
            assert found, r.stderr[-2000:]
            totals.append(int(found.group(1)))
    return (totals[1] - totals[0]) / (2 * n)


def main() -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.inprocess", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("op", choices=OPS)
    p.add_argument("n", type=int, nargs="?", default=20000, help="requests (default 20000)")
    p.add_argument("--database-url", help="default: a fresh SQLite file")
    p.add_argument("--callgrind", action="store_true", help="instructions per request")
    p.add_argument("--server", action="store_true",
                   help="through consentry serve's uvicorn protocol, not as ASGI")
    args = p.parse_args()
    if args.callgrind:
        n = min(args.n, 500)
        per = callgrind(args.op, n, args.server)
        print(f"{args.op}: {per / 1000:.1f} k instructions/request")
        return 0
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        uvloop.install()
        per = asyncio.run(drive(args.op, args.n, url, args.server))
    print(f"{args.op}: {per * 1e6:.1f} µs CPU/request (n={args.n}, pid {os.getpid()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
