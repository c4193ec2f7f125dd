"""``python -m bench.growth --quick`` runs end to end (no timings asserted: CI only checks that
it seeds, measures and purges without an error)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


def test_growth_quick_runs_and_reports_no_errors(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bench.growth", "--quick", "--output", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # one row per size and scenario: | N | scenario | req/s | p50 | p99 | errors | CPU |
    rows = re.findall(
        r"^\| ([\d,]+) \| (client_credentials token|introspection|bearer-protected GET) "
        r"\| [\d,]+ \| [\d.]+ \| [\d.]+ \| (\d+) \|",
        r.stdout,
        re.M,
    )
    assert len(rows) == 6, r.stdout[-3000:]
    assert all(errors == "0" for _n, _scenario, errors in rows), rows
    assert {n for n, _s, _e in rows} == {"1,000", "20,000"}
    # the purge removed the expired rows and kept the live ones
    assert re.search(r"^\| 20,000 \| 4,000 / 4,000 / 4,000 \| .* \| yes \|", r.stdout, re.M), (
        r.stdout
    )
    assert (tmp_path / "growth.md").exists() and (tmp_path / "growth.json").exists()
