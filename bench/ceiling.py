"""The ceiling of the Python HTTP stack: a Starlette hello-world under uvicorn.

One process, uvloop and httptools, no access log — the same stack ``consentry serve`` runs on,
so ``req/s of a scenario / req/s of this`` tells how much of the stack's budget consentry's
own work takes.

    python -m bench.ceiling PORT
"""

from __future__ import annotations

import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, world!")


app = Starlette(routes=[Route("/", hello), Route("/healthz", hello)])


def main() -> None:
    import uvicorn

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8090
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
