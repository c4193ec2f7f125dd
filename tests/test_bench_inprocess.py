"""``python -m bench.inprocess`` runs every operation (a smoke test: no timings asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("op", ["client_credentials", "introspection", "bearer_get", "authorize"])
def test_inprocess_driver_runs(op: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bench.inprocess", op, "200"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith(f"{op}: ") and "CPU/request" in r.stdout


@pytest.mark.parametrize("op", ["client_credentials", "bearer_get", "refresh_token"])
def test_inprocess_driver_runs_through_the_server_protocol(op: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bench.inprocess", op, "200", "--server"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith(f"{op}: ") and "CPU/request" in r.stdout


def test_open_loop_driver_runs() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bench.openloop", "200", "1", "--no-pin"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("client_credentials open loop at 200/s") and "errors=0" in r.stdout
