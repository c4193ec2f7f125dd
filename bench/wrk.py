"""Running ``wrk`` with the scripts in ``bench/lua`` and reading their ``BENCHJSON`` line."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import procs

LUA = Path(__file__).resolve().parent / "lua"


def ensure_wrk() -> str:
    """Path of ``wrk``; installs Debian's package when missing and running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing Debian's wrk ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        procs.run(["apt-get", "update", "-qq"], env=env, timeout=600)
        r = procs.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, timeout=600)
        if r.returncode != 0:
            raise SystemExit(f"apt-get install wrk failed:\n{r.stderr[-2000:]}")
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is required: apt-get install wrk")
    return found


@dataclass
class WrkResult:
    requests: int = 0
    seconds: float = 0.0
    ok: int = 0
    non2xx: int = 0
    unexpected: int = 0
    exhausted: int = 0
    socket_errors: int = 0
    captured: int = 0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    sent: list[int] = field(default_factory=list)  # pool values used, per wrk thread
    server_cpu_s: float | None = None  # CPU time the server process used during the run
    raw: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Successful responses per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_req(self) -> float | None:
        """Server CPU per successful request: less noisy than req/s on a shared machine."""
        if self.server_cpu_s is None or not self.ok:
            return None
        return 1000 * self.server_cpu_s / self.ok

    @property
    def cpu_util(self) -> float | None:
        """Server CPU time / wall time: near 1.0 when the server had its core to itself."""
        if self.server_cpu_s is None or not self.seconds:
            return None
        return self.server_cpu_s / self.seconds

    @property
    def errors(self) -> int:
        """Non-2xx, 2xx with the wrong body, and socket errors (connect/read/write/timeout)."""
        return self.non2xx + self.unexpected + self.socket_errors


def run_wrk(
    url: str,
    script: str,
    env: dict[str, str],
    *,
    duration: float,
    connections: int,
    threads: int,
    pinning: procs.Pinning,
    timeout_s: int = 5,
    until: Callable[[], bool] | None = None,
) -> WrkResult:
    """Run wrk for ``duration`` seconds (or until ``until()`` is true: wrk gets SIGINT and
    still prints its summary)."""
    connections = max(connections, threads)
    argv = pinning.load(
        [
            ensure_wrk(),
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{max(1, round(duration))}s",
            "--timeout",
            f"{timeout_s}s",
            "-s",
            str(LUA / script),
            url,
        ]
    )
    full_env = {**os.environ, **env}
    if until is None:
        r = procs.run(argv, env=full_env, timeout=duration + 600)
        rc, stdout, stderr = r.returncode, r.stdout, r.stderr
    else:
        rc, stdout, stderr = _run_until(argv, full_env, duration, until)
    line = next((ln for ln in stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if rc != 0 or line is None:
        raise RuntimeError(f"wrk failed ({rc}): {stderr[-2000:]}{stdout[-2000:]}")
    d = json.loads(line[len("BENCHJSON ") :])
    return WrkResult(
        requests=int(d["requests"]),
        seconds=d["duration_us"] / 1e6,
        ok=int(d["ok"]),
        non2xx=int(d["non2xx"]),
        unexpected=int(d["unexpected"]),
        exhausted=int(d["exhausted"]),
        socket_errors=int(d["connect"] + d["read"] + d["write"] + d["timeout"]),
        captured=int(d["captured"]),
        p50_ms=d["p50_us"] / 1000,
        p90_ms=d["p90_us"] / 1000,
        p99_ms=d["p99_us"] / 1000,
        max_ms=d["max_us"] / 1000,
        sent=[int(x) for x in d.get("sent", [])],
        raw=d,
    )


def _run_until(
    argv: list[str], env: dict[str, str], duration: float, until: Callable[[], bool]
) -> tuple[int, str, str]:
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = procs.spawn(argv, env=env, stdout=out, stderr=err)
        started = time.monotonic()
        deadline = started + duration + 60
        try:
            while proc.poll() is None:
                time.sleep(0.2)
                # wrk installs its SIGINT handler at start: give it a moment first
                if time.monotonic() - started > 1 and (until() or time.monotonic() > deadline):
                    os.kill(proc.pid, signal.SIGINT)  # wrk stops and still prints its summary
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=30)
                    break
        finally:
            procs.stop(proc)
        out.seek(0)
        err.seek(0)
        return proc.returncode or 0, out.read(), err.read()


def write_pool(values: list[str], prefix: Path, threads: int) -> None:
    """Split ``values`` into ``prefix.0 .. prefix.<threads-1>``, one file per wrk thread."""
    for t in range(threads):
        Path(f"{prefix}.{t}").write_text("".join(v + "\n" for v in values[t::threads]))


def unsent(values: list[str], threads: int, sent: list[int]) -> list[str]:
    """The values of a pool written by ``write_pool`` that wrk never sent."""
    if len(sent) != threads:
        return []
    rest: list[str] = []
    for t in range(threads):
        rest.extend(values[t::threads][sent[t] :])
    return rest


def finished(prefix: Path, threads: int) -> bool:
    """Whether every wrk thread of a capturing run has finished (see lua/common.lua)."""
    return all(Path(f"{prefix}.{t}.done").exists() for t in range(threads))


def read_captured(prefix: Path, threads: int) -> list[str]:
    values: list[str] = []
    for t in range(threads):
        p = Path(f"{prefix}.{t}")
        if p.exists():
            values.extend(v for v in p.read_text().splitlines() if v)
    return values
