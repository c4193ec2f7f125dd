"""Open-loop load on the token endpoint: ``python -m bench.openloop RATE [SECONDS]``.

wrk is a closed loop: each connection sends its next request when the last one is answered,
so a slower server is simply sent less. Independent clients do not wait for each other. This
driver starts consentry on a fresh SQLite file (as ``python -m bench`` does, pinned to the
first CPU, itself on the second), then sends ``client_credentials`` token requests at Poisson
arrivals of RATE per second over 64 keep-alive connections, and times each request from the
moment it was *scheduled*, so time spent waiting for a free connection counts too. It prints
p50 / p90 / p99 and the mean; no assertion is made on them (compare two commits with
``PYTHONPATH=<other checkout>/src``, which the server inherits).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import procs, targets

CONNECTIONS = 64


async def _drive(host: str, port: int, auth: str, rate: float, seconds: float) -> str:
    body = b"grant_type=client_credentials"
    request = (
        f"POST /v3/token HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {auth}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        idle.put_nowait(await asyncio.open_connection(host, port))
    latencies: list[float] = []
    errors = 0

    async def one(scheduled: float) -> None:
        nonlocal errors
        reader, writer = await idle.get()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            errors += 1
        latencies.append(time.perf_counter() - scheduled)
        idle.put_nowait((reader, writer))

    tasks = []
    start = due = time.perf_counter()
    while due - start < seconds:
        due += random.expovariate(rate)
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        _reader, writer = idle.get_nowait()
        writer.close()
    latencies.sort()

    def ms(q: float) -> str:
        return f"{latencies[int(q * (len(latencies) - 1))] * 1e3:.2f}"

    return (
        f"client_credentials open loop at {rate:,.0f}/s for {seconds:g} s: n={len(latencies)} "
        f"errors={errors} p50 {ms(0.5)} ms p90 {ms(0.9)} ms p99 {ms(0.99)} ms "
        f"mean {statistics.mean(latencies) * 1e3:.2f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.openloop", description=__doc__)
    parser.add_argument("rate", type=float, help="requests per second (Poisson arrivals)")
    parser.add_argument("seconds", type=float, nargs="?", default=8.0)
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="consentry-openloop-"))
    pinning = procs.Pinning(not args.no_pin)
    server = targets.Consentry(work, pinning, "sqlite")
    try:
        server.start()
        server.setup()
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        if pinning.load_cpu is not None:
            os.sched_setaffinity(0, {int(pinning.load_cpu)})
        print(asyncio.run(_drive(host, int(port), server.auth, args.rate, args.seconds)))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
