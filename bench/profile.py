"""``--profile``: sample consentry with py-spy while a scenario runs, summarise the hot spots.

py-spy (``pip install py-spy`` into the venv; needs root or ptrace permission) records
collapsed stacks (``--format raw``), which are kept as ``profile-<scenario>.raw`` (feed them
to flamegraph.pl or speedscope) and summarised in ``profile-<scenario>.txt``: the functions
with the most samples on top of the stack (self) and anywhere on it (inclusive).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench import procs


@dataclass
class Recording:
    proc: subprocess.Popen[bytes]
    raw: Path
    scenario: str


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    if local.exists():
        return str(local)
    return shutil.which("py-spy")


def start(pid: int | None, raw: Path, duration: float, pinning: procs.Pinning) -> Recording | None:
    exe = py_spy()
    if exe is None or pid is None:
        print("  (--profile: py-spy not found; pip install py-spy)", flush=True)
        return None
    # the server is `taskset ... python -m consentry.cli serve`; taskset execs, so pid is python
    argv = pinning.load(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "--duration",
            str(max(1, int(duration))),
            "--output",
            str(raw),
        ]
    )
    proc = procs.spawn(argv, log=raw.with_suffix(".log"))
    return Recording(proc=proc, raw=raw, scenario=raw.stem)


def finish(rec: Recording, out_prefix: Path, top: int = 15) -> str | None:
    try:
        rec.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        procs.stop(rec.proc)
    if not rec.raw.exists():
        return None
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    raw_copy = out_prefix.with_suffix(".raw")
    shutil.copyfile(rec.raw, raw_copy)
    text = summarise(rec.raw.read_text(errors="replace"), rec.scenario, top)
    out_prefix.with_suffix(".txt").write_text(text)
    return text


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)"
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{name} ({file})" if file else name


def summarise(collapsed: str, scenario: str, top: int = 15) -> str:
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        total += n
        self_c[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return f"profile {scenario}: no samples\n"
    lines = [f"profile {scenario}: {total} samples (py-spy, 200 Hz, wall clock of all threads)"]
    lines.append("  self%  function (top of stack)")
    lines += [f"  {100 * c / total:5.1f}  {f}" for f, c in self_c.most_common(top)]
    lines.append("  incl%  function (anywhere on the stack)")
    lines += [f"  {100 * c / total:5.1f}  {f}" for f, c in incl.most_common(top + 10)]
    return "\n".join(lines) + "\n"
