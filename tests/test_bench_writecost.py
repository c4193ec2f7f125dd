"""``python -m bench.writecost`` measures a refresh's statements on a copy of a database (a
smoke test: it runs, prints each statement, and leaves the measured file as it was)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_writecost_runs_on_a_copy(tmp_path: Path) -> None:
    db = tmp_path / "bench.db"
    made = subprocess.run(
        [sys.executable, "-m", "bench.inprocess", "refresh_token", "200", "--server",
         "--database-url", f"sqlite:///{db}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    files = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    for order in ("random", "issued"):
        r = subprocess.run(
            [sys.executable, "-m", "bench.writecost", str(db), "--reads", "50", "--jobs", "48",
             "--batch", "12", "--order", order],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        for line in ("read, a commit before each read", "spend (UPDATE refresh_tokens",
                     "grant touch", "access token INSERT", "refresh token INSERT", "COMMIT",
                     f"tokens in {order} order", "WAL frames (pages) written per COMMIT"):
            assert line in r.stdout, (line, r.stdout)
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()} == files


def test_writecost_refuses_a_missing_file(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bench.writecost", str(tmp_path / "none.db")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode != 0 and "no such file" in r.stderr
