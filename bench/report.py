"""The results table (Markdown, printed and written) and the JSON next to it."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.wrk import WrkResult

SCENARIOS: list[tuple[str, str]] = [
    ("ceiling", "hello-world ceiling"),
    ("client_credentials", "client_credentials token"),
    ("authorization_code", "authorization_code exchange"),
    ("refresh_token", "refresh with rotation"),
    ("introspection", "introspection"),
    ("bearer_get", "bearer-protected GET"),
]
TARGETS = ["consentry", "node-oidc-provider"]
DOCS_START = "<!-- bench:latest:start -->"
DOCS_END = "<!-- bench:latest:end -->"


@dataclass
class Cell:
    """One scenario against one server: a measurement, or why there is none."""

    result: WrkResult | None = None
    na: str | None = None
    pool: int | None = None
    notes: list[str] = field(default_factory=list)
    writer: dict[str, Any] | None = None  # consentry's SQLite writer meanwhile (bench.writer)

    def as_json(self, ceiling: float) -> dict[str, Any]:
        if self.result is None:
            return {"na": self.na or "not run", "notes": self.notes}
        r = self.result
        return {
            "req_per_s": round(r.rate, 1),
            "p50_ms": round(r.p50_ms, 3),
            "p90_ms": round(r.p90_ms, 3),
            "p99_ms": round(r.p99_ms, 3),
            "max_ms": round(r.max_ms, 3),
            "errors": r.errors,
            "non2xx": r.non2xx,
            "unexpected_body": r.unexpected,
            "socket_errors": r.socket_errors,
            "pool_exhausted_requests": r.exhausted,
            "requests": r.requests,
            "ok": r.ok,
            "seconds": round(r.seconds, 3),
            "pool": self.pool,
            "server_cpu_s": None if r.server_cpu_s is None else round(r.server_cpu_s, 3),
            "server_cpu_ms_per_req": None
            if r.cpu_ms_per_req is None
            else round(r.cpu_ms_per_req, 4),
            "server_cpu_util": None if r.cpu_util is None else round(r.cpu_util, 3),
            "ratio_to_ceiling": round(r.rate / ceiling, 4) if ceiling else None,
            "sqlite_writer": self.writer,
            "notes": self.notes,
        }


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent.parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info(node_version: str | None) -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk = shutil.which("wrk")
    wrk_version = ""
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout
        wrk_version = out.splitlines()[0].split(" [")[0] if out else ""
    commit = _git("rev-parse", "--short", "HEAD")
    if commit and _git("status", "--porcelain", "--", "src"):
        commit += " (+ uncommitted changes in src/)"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node_version,
        "wrk": wrk_version,
        "commit": commit,
    }


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def _cell_md(cell: Cell | None, ceiling: float) -> list[str]:
    if cell is None:
        return ["–"] * 6
    if cell.result is None:
        return ["n/a", "", "", "", "", ""]
    r = cell.result
    ratio = f"{r.rate / ceiling:.3f}" if ceiling else "?"
    cpu = f"{r.cpu_ms_per_req:.3f}" if r.cpu_ms_per_req is not None else "?"
    return [_fmt_rate(r.rate), f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", str(r.errors), ratio, cpu]


def table_md(
    cells: dict[str, dict[str, Cell]], ceiling: float, with_node: bool, keys: list[str]
) -> str:
    head = ["scenario", "consentry req/s", "p50 ms", "p99 ms", "errors", "ratio", "CPU ms/req"]
    if with_node:
        head += ["node-oidc-provider req/s", "p50 ms", "p99 ms", "errors", "ratio", "CPU ms/req"]
        head.append("consentry/node")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label in SCENARIOS:
        if key not in keys:
            continue
        row = cells.get(key, {})
        c, n = row.get("consentry"), row.get("node-oidc-provider")
        name = label
        if key == "ceiling":
            name = (
                "hello-world ceiling (Starlette / node http)"
                if with_node
                else ("hello-world ceiling (Starlette)")
            )
        vals = [name, *_cell_md(c, ceiling)]
        if with_node:
            vals += _cell_md(n, ceiling)
            if c and n and c.result and n.result and n.result.rate:
                vals.append(f"{c.result.rate / n.result.rate:.2f}")
            else:
                vals.append("")
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines)


def notes_md(cells: dict[str, dict[str, Cell]]) -> list[str]:
    out = []
    for key, label in SCENARIOS:
        for target in TARGETS:
            cell = cells.get(key, {}).get(target)
            if cell is None:
                continue
            if cell.result is None and cell.na:
                out.append(f"- {target}, {label}: n/a — {cell.na}")
            out.extend(f"- {target}, {label}: {note}" for note in cell.notes)
    return out


def render(
    cells: dict[str, dict[str, Cell]],
    ceiling: float,
    settings: dict[str, Any],
    machine: dict[str, Any],
    extra_notes: list[str],
) -> str:
    with_node = not settings.get("skip_node")
    parts = [
        f"consentry benchmark — {machine['date']}" + (" (quick)" if settings.get("quick") else ""),
        "",
        table_md(cells, ceiling, with_node, ["ceiling", *settings["scenarios"]]),
        "",
        "req/s counts successful (2xx, expected body) responses; p50/p99 from wrk; errors = "
        "non-2xx + wrong body + socket errors; ratio = req/s ÷ the Starlette hello-world "
        "of the same run; CPU ms/req = the server process's CPU time (user+system, all "
        "threads) per successful request — steadier than req/s when other work shares the "
        "server's core.",
        "",
        f"- machine: {machine['nproc']} × {machine['cpu']}, Linux {machine['kernel']}, "
        f"Python {machine['python']}, node {machine['node'] or '–'}, {machine['wrk']}",
        f"- commit: {machine['commit'] or '?'}; database: {settings['database']}; "
        f"consentry processes: {settings.get('workers', 1)}; "
        f"{settings['connections']} connections, {settings['threads']} wrk thread(s), "
        f"{settings['duration']} s per scenario; {settings['pinning']}",
        f"- load average before/after: {settings['load_before']} / {settings['load_after']}",
    ]
    notes = notes_md(cells) + [f"- {n}" for n in extra_notes]
    if notes:
        parts += ["", "Notes:", *notes]
    return "\n".join(parts) + "\n"


def as_json(
    cells: dict[str, dict[str, Cell]],
    ceiling: float,
    settings: dict[str, Any],
    machine: dict[str, Any],
    extra_notes: list[str],
    ok: bool,
) -> dict[str, Any]:
    return {
        "machine": machine,
        "settings": settings,
        "ceiling_req_per_s": round(ceiling, 1),
        "scenarios": [
            {
                "scenario": key,
                "label": label,
                **{
                    t: cells[key][t].as_json(ceiling)
                    for t in TARGETS
                    if key in cells and t in cells[key]
                },
            }
            for key, label in SCENARIOS
        ],
        "notes": extra_notes,
        "consentry_ok": ok,
        "argv": sys.argv,
    }


def write(out_dir: Path, text: str, data: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.md").write_text(text)
    (out_dir / "latest.json").write_text(json.dumps(data, indent=2) + "\n")


def update_docs(doc: Path, text: str, start: str = DOCS_START, end: str = DOCS_END) -> bool:
    """Replace the block between ``start`` and ``end`` (by default the bench markers) of
    docs/performance.md with ``text``; False when the file or the markers are missing."""
    if not doc.exists():
        return False
    content = doc.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(content):
        return False
    block = f"{start}\n{text.rstrip()}\n{end}"
    doc.write_text(pattern.sub(lambda _m: block, content, count=1))
    return True
