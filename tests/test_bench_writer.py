"""bench.writer: what the SQLite writer did during a scenario, from two /metrics scrapes."""

from __future__ import annotations

from prometheus_client import generate_latest

from bench import writer
from consentry.metrics import Metrics
from consentry.store.db import TIMING_BOUNDS, WriterStats


def _page(jobs: int, commits: list[int], commit_s: float, checkpoints: int, cp_s: float) -> str:
    """A /metrics page as consentry renders it, for per-bucket commit counts ``commits``."""
    m = Metrics()
    empty = [0] * (len(TIMING_BOUNDS) + 1)
    stats = WriterStats(
        jobs, TIMING_BOUNDS, (tuple(commits), commit_s), (tuple([checkpoints, *empty[1:]]), cp_s)
    )
    m.watch_sqlite_writer(lambda: stats)
    return generate_latest(m.registry).decode()


def _buckets(**at: int) -> list[int]:
    """Per-bucket counts from {bound label: count} ("b0_025" is the 25 ms bucket, "inf")."""
    counts = [0] * (len(TIMING_BOUNDS) + 1)
    for label, n in at.items():
        i = len(TIMING_BOUNDS) if label == "inf" else TIMING_BOUNDS.index(
            float(label[1:].replace("_", "."))
        )
        counts[i] = n
    return counts


def test_a_scenario_with_slow_commits_gets_a_note() -> None:
    before = writer.parse(_page(100, _buckets(b0_001=10), 0.005, 1, 0.002))
    after = writer.parse(
        _page(
            1100,
            _buckets(b0_001=40, b0_005=20, b0_05=3, b0_25=2),  # 5 over 25 ms, 2 over 100 ms
            0.005 + 0.5,
            11,
            0.002 + 0.03,
        )
    )
    assert before is not None and after is not None
    d = writer.during(before, after, seconds=10.0)
    assert d == {
        "group_commits": 55,
        "jobs_per_commit": round(1000 / 55, 2),
        "commit_mean_ms": round(1000 * 0.5 / 55, 3),
        "commits_over_25ms": 5,
        "commits_over_100ms": 2,
        "checkpoints": 10,
        "checkpoint_mean_ms": 3.0,
        "writer_busy": 0.053,
    }
    line = writer.note(d)
    assert line is not None and line.startswith("5 of 55 SQLite group commits took over 25 ms")


def test_fast_commits_get_no_note_and_an_idle_writer_nothing() -> None:
    before = writer.parse(_page(0, _buckets(), 0.0, 0, 0.0))
    after = writer.parse(_page(50, _buckets(b0_001=10, b0_01=5), 0.02, 0, 0.0))
    assert before is not None and after is not None
    d = writer.during(before, after, seconds=1.0)
    assert d is not None and d["commits_over_25ms"] == 0 and d["checkpoint_mean_ms"] is None
    assert writer.note(d) is None
    assert writer.during(after, after, seconds=1.0) is None


def test_a_page_without_a_writer_parses_to_none() -> None:
    m = Metrics()
    m.watch_sqlite_writer(lambda: None)  # PostgreSQL
    assert writer.parse(generate_latest(m.registry).decode()) is None
    assert writer.scrape("http://127.0.0.1:9/") is None  # nothing listens: None, no raise
