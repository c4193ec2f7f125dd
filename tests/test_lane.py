"""consentry.lane: an endpoint coroutine stepped at once, and finished in a task if it waits."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest
from starlette.responses import StreamingResponse

from consentry import lane

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def test_a_coroutine_that_never_waits_finishes_on_the_spot() -> None:
    got: list[Any] = []

    async def endpoint() -> str:
        var.set("changed inside")
        return "done"

    async def main() -> None:
        task = lane.run(endpoint(), got.append, pytest.fail)
        assert task is None and got == ["done"]
        assert var.get() == "unset"  # the step ran in a copy of the context

    asyncio.run(main())


def test_a_waiting_coroutine_goes_on_in_a_task_from_where_it_stopped() -> None:
    got: list[Any] = []
    seen_tasks: list[Any] = []

    async def main() -> None:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def endpoint() -> int:
            seen_tasks.append(asyncio.current_task())  # first step: outside any task
            value = await fut
            seen_tasks.append(asyncio.current_task())
            await asyncio.sleep(0)  # a bare yield is handed on too
            return value + 1

        # Started from a loop callback, as the server's protocol does: no task around it.
        started: list[Any] = []
        asyncio.get_running_loop().call_soon(
            lambda: started.append(lane.run(endpoint(), got.append, pytest.fail))
        )
        await asyncio.sleep(0)
        (task,) = started
        assert task is not None and got == []
        fut.set_result(41)
        await task
        assert got == [42]
        assert seen_tasks == [None, task]

    asyncio.run(main())


def test_not_eager_runs_the_whole_coroutine_in_a_task() -> None:
    seen: list[Any] = []

    async def main() -> None:
        async def endpoint() -> str:
            seen.append(asyncio.current_task())
            return "ok"

        got: list[Any] = []
        task = lane.run(endpoint(), got.append, pytest.fail, eager=False)
        assert task is not None and got == []
        await task
        assert got == ["ok"] and seen == [task]

    asyncio.run(main())


def test_errors_reach_on_error_whether_raised_at_once_or_later() -> None:
    errors: list[BaseException] = []

    async def main() -> None:
        async def at_once() -> None:
            raise ValueError("now")

        assert lane.run(at_once(), pytest.fail, errors.append) is None

        async def later() -> None:
            await asyncio.sleep(0)
            raise KeyError("later")

        task = lane.run(later(), pytest.fail, errors.append)
        assert task is not None
        await task

        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def cancelled() -> None:
            await fut

        task = lane.run(cancelled(), pytest.fail, errors.append)
        assert task is not None
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert [type(e) for e in errors] == [ValueError, KeyError, asyncio.CancelledError]


def test_collect_runs_a_streaming_response_to_its_end() -> None:
    async def chunks() -> Any:
        yield b"one,"
        await asyncio.sleep(0)
        yield b"two"

    async def main() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        response = StreamingResponse(chunks(), status_code=201, media_type="text/plain")
        return await lane.collect(response, {"type": "http", "asgi": {"spec_version": "2.4"}})

    status, headers, body = asyncio.run(main())
    assert status == 201 and body == b"one,two"
    assert (b"content-type", b"text/plain; charset=utf-8") in headers


def test_code_that_needs_a_task_before_its_first_wait_runs_with_eager_false() -> None:
    """asyncio.timeout() (SQLAlchemy's async pool waits with it) refuses to run outside a
    task: stepped eagerly from a loop callback it fails, with eager=False it works. This is
    why the lane steps at once only the endpoints declared eager (app.py)."""
    results: list[Any] = []
    errors: list[BaseException] = []

    async def endpoint() -> str:
        async with asyncio.timeout(5):
            await asyncio.sleep(0)
        return "ok"

    async def main() -> None:
        started: list[Any] = []
        loop = asyncio.get_running_loop()
        loop.call_soon(lambda: started.append(lane.run(endpoint(), results.append, errors.append)))
        loop.call_soon(
            lambda: started.append(
                lane.run(endpoint(), results.append, errors.append, eager=False)
            )
        )
        await asyncio.sleep(0)
        await asyncio.gather(*(t for t in started if t is not None))

    asyncio.run(main())
    assert results == ["ok"]
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
