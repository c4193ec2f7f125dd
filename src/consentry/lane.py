"""Running an endpoint coroutine at once, on the caller's stack, for the server's fast lane.

``consentry serve`` answers the API's fixed-path routes without ASGI messages (see
:mod:`consentry.serving` and ``RequestContext.lane``): the protocol hands over the parsed
request and gets back the status, headers and body to write. A measured reason: uvicorn's
cycle for one request (an ``asyncio.Event``, a task, the ASGI message dicts, a regex per
response header, two writes) cost more than half of what a bearer-protected GET cost in all.

The endpoint coroutine is stepped here directly. Most API calls on SQLite never wait for
anything (their reads run on the event-loop thread), so they finish in that first step: no
task, no trip through the event loop. One that does wait (for a write's commit, or Redis)
goes on as an ordinary task from where it stopped (:func:`_resume` hands the task whatever
the coroutine waits on), so from its first wait on it runs exactly as it would under
uvicorn: ``asyncio.current_task()``, timeouts and cancellation all work.

The first step runs in a copy of the current context, which the task then keeps, so that a
context variable set by one request never leaks into the connection's next.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

from starlette.responses import Response
from starlette.types import Message, Scope

T = TypeVar("T")
_NOT_STARTED = object()

# uvicorn's answer when an application fails before its response started.
SERVER_ERROR_HEADERS = (
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", b"21"),
    (b"connection", b"close"),
)


def run(
    coro: Coroutine[Any, Any, T],
    on_result: Callable[[T], asyncio.Task[None] | None],
    on_error: Callable[[BaseException], None],
    eager: bool = True,
) -> asyncio.Task[None] | None:
    """Step ``coro`` now; ``on_result`` gets its value (or ``on_error`` its exception).

    Returns None when it finished at once, else the task that finishes it (and calls back
    from there). ``on_result`` may itself return a task; the returned one then waits for it.
    With ``eager=False`` the coroutine runs in a task from its start: for code that needs
    ``asyncio.current_task()`` before its first wait (SQLAlchemy's asyncio pool, timeouts)."""
    ctx = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    if not eager:
        return loop.create_task(_finish(coro, _NOT_STARTED, on_result, on_error), context=ctx)
    try:
        waiting_on = ctx.run(coro.send, None)
    except StopIteration as stop:
        return on_result(stop.value)
    except Exception as exc:
        on_error(exc)
        return None
    return loop.create_task(_finish(coro, waiting_on, on_result, on_error), context=ctx)


async def _finish(
    coro: Coroutine[Any, Any, T],
    waiting_on: Any,
    on_result: Callable[[T], asyncio.Task[None] | None],
    on_error: Callable[[BaseException], None],
) -> None:
    try:
        result: T = await (coro if waiting_on is _NOT_STARTED else _resume(coro, waiting_on))
    except BaseException as exc:  # as uvicorn's run_asgi: even a cancellation gets its 500
        on_error(exc)
        return
    more = on_result(result)
    if more is not None:
        await more


@types.coroutine
def _resume(coro: Coroutine[Any, Any, T], waiting_on: Any) -> Generator[Any, Any, T]:
    """Go on with a coroutine suspended on ``waiting_on`` inside the awaiting task.

    What the coroutine yields (a future, or None for a bare ``sleep(0)``) is yielded to the
    task, and what the task sends or throws back goes to the coroutine: ``yield from``,
    except that the coroutine was already started."""
    while True:
        try:
            sent = yield waiting_on
        except BaseException as exc:
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
        else:
            try:
                waiting_on = coro.send(sent)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]


async def collect(response: Response, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A response that is not a plain body (streaming, file, background work), run through
    its own ASGI call and collected: its status, headers and whole body."""
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def receive() -> Message:
        # The request was read in full; the client stays until the response is written
        # (a streaming response listening for a disconnect must not see one).
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await response(scope, receive, send)
    return status, headers, b"".join(chunks)
