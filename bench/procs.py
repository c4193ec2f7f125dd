"""Child processes that never outlive the harness.

Every child is started in its own session (so a terminal's Ctrl-C reaches only the harness,
which then stops the children in order), with PR_SET_PDEATHSIG so that the kernel kills it
even if the harness itself is SIGKILLed, and is remembered so that ``stop_all`` (run from a
``finally``, ``atexit`` and the SIGTERM/SIGHUP handlers) can terminate its whole process group.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

_children: list[subprocess.Popen[Any]] = []
_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Pinning:
    """Which CPU the servers get and which the load generator gets (``taskset``)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and cpu_count() >= 2 and shutil.which("taskset") is not None
        cpus = sorted(os.sched_getaffinity(0)) if self.enabled else []
        self.server_cpu = str(cpus[0]) if self.enabled else None
        self.load_cpu = str(cpus[1]) if self.enabled else None

    def server(self, argv: Sequence[str]) -> list[str]:
        return ["taskset", "-c", self.server_cpu, *argv] if self.server_cpu else list(argv)

    def load(self, argv: Sequence[str]) -> list[str]:
        return ["taskset", "-c", self.load_cpu, *argv] if self.load_cpu else list(argv)

    def describe(self) -> str:
        if not self.enabled:
            return "not pinned"
        return f"server on CPU {self.server_cpu}, wrk on CPU {self.load_cpu} (taskset)"


def spawn(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    log: Path | None = None,
    stdout: IO[Any] | None = None,
    stderr: IO[Any] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child in the background; its output goes to ``log`` (or stdout/stderr)."""
    out: IO[Any] | int = stdout if stdout is not None else subprocess.DEVNULL
    if log is not None:
        out = open(log, "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        proc = subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=stderr if stderr is not None else subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_child_setup,  # noqa: PLW1509 - no threads are running here
        )
    finally:
        if log is not None and not isinstance(out, int):
            out.close()
    _children.append(proc)
    return proc


def run(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Like ``subprocess.run(capture_output=True, text=True)``, but killable by ``stop_all``."""
    proc = subprocess.Popen(
        list(argv),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_child_setup,  # noqa: PLW1509
    )
    _children.append(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        stop(proc)
        raise
    finally:
        with contextlib.suppress(ValueError):
            _children.remove(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def stop(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # the group may hold grandchildren even after the leader exited
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ValueError):
        _children.remove(proc)


def stop_all() -> None:
    for proc in reversed(list(_children)):
        stop(proc, grace=3.0)


def _on_signal(signum: int, _frame: object) -> None:
    # turn SIGTERM/SIGHUP into an exception so that ``finally`` blocks run
    print(f"\nsignal {signum}: stopping every child process", file=sys.stderr, flush=True)
    raise SystemExit(128 + signum)


def install_handlers() -> None:
    atexit.register(stop_all)
    # Ctrl-C raises KeyboardInterrupt even when started with SIGINT ignored (a background
    # job of a non-interactive shell inherits SIG_IGN, and Python then leaves it ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def run_main(
    prefix: str,
    keep: bool,
    body: Callable[[Path], int],
    cleanup: Callable[[], None] = lambda: None,
) -> int:
    """A harness's ``main``: ``body(work)`` in a fresh temporary folder; Ctrl-C is exit 130,
    an unexpected error is its traceback and exit 2; afterwards every child is stopped,
    ``cleanup()`` runs and the folder is removed (kept and named with ``keep``)."""
    install_handlers()
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return body(work)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping every child process", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 2
    finally:
        stop_all()
        cleanup()
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def wait_http(url: str, proc: subprocess.Popen[Any], log: Path | None, timeout: float = 60) -> None:
    """Wait until ``url`` answers 200, or fail with the end of the child's log."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up within {timeout:.0f} s")
        time.sleep(0.1)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (e.g. the workers of ``serve --workers N``)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process (all its threads) and of its live descendants, from
    /proc/<pid>/stat."""
    if pid is None:
        return None
    fields = _stat_fields(pid)
    if fields is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total = int(fields[11]) + int(fields[12])
    for child in descendants(pid):
        child_fields = _stat_fields(child)
        if child_fields is not None:
            total += int(child_fields[11]) + int(child_fields[12])
    return total / ticks


def python() -> str:
    return sys.executable
