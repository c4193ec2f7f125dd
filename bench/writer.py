"""What consentry's SQLite writer did during a scenario, from its ``/metrics`` before and after.

The server exposes ``consentry_sqlite_group_commit_seconds`` (one observation per batch: the
wall time of its transaction, the WAL's fsync included), ``consentry_sqlite_checkpoint_seconds``
and ``consentry_sqlite_write_jobs_total`` (``consentry.metrics.SqliteWriterStats``). The
difference of two scrapes says how many group commits a scenario made, how many jobs each
carried, how long they took, and how many took long enough to show in the p99: every write
request in a batch waits for its commit, so a disk that takes 30 ms for one fsync makes 30 ms
requests whatever the CPU does.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

COMMITS = "consentry_sqlite_group_commit_seconds"
CHECKPOINTS = "consentry_sqlite_checkpoint_seconds"
JOBS = "consentry_sqlite_write_jobs"
# Commits at least this slow are reported in a note (they are what a p99 of 20 ms can't hide).
SLOW = 0.025


@dataclass(frozen=True)
class Snapshot:
    jobs: float
    commits: float
    commit_seconds: float
    commits_within: dict[float, float]  # cumulative count by upper bound (le)
    checkpoints: float
    checkpoint_seconds: float


def parse(text: str) -> Snapshot | None:
    """The writer's numbers from a /metrics page; None if it has no SQLite writer."""
    values: dict[str, float] = {}
    within: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (COMMITS, CHECKPOINTS, JOBS):
            continue
        for s in family.samples:
            if s.name == COMMITS + "_bucket":
                within[float(s.labels["le"])] = s.value
            else:
                values[s.name] = s.value
    if COMMITS + "_count" not in values:
        return None
    return Snapshot(
        jobs=values.get(JOBS + "_total", 0.0),
        commits=values[COMMITS + "_count"],
        commit_seconds=values.get(COMMITS + "_sum", 0.0),
        commits_within=within,
        checkpoints=values.get(CHECKPOINTS + "_count", 0.0),
        checkpoint_seconds=values.get(CHECKPOINTS + "_sum", 0.0),
    )


def scrape(base_url: str, timeout: float = 10.0) -> Snapshot | None:
    """``base_url``'s writer numbers (``base_url`` ends with a slash); None if unreadable."""
    try:
        with urllib.request.urlopen(base_url + "metrics", timeout=timeout) as r:  # noqa: S310 - loopback
            return parse(r.read().decode())
    except OSError:
        return None


def _over(s: Snapshot, bound: float) -> float:
    """Commits slower than ``bound`` (one of the histogram's bounds)."""
    return s.commits - s.commits_within.get(bound, s.commits)


def during(before: Snapshot, after: Snapshot, seconds: float) -> dict[str, Any] | None:
    """What the writer did between two scrapes ``seconds`` apart; None if it did nothing."""
    commits = after.commits - before.commits
    if commits <= 0:
        return None
    checkpoints = after.checkpoints - before.checkpoints
    commit_s = after.commit_seconds - before.commit_seconds
    checkpoint_s = after.checkpoint_seconds - before.checkpoint_seconds
    return {
        "group_commits": int(commits),
        "jobs_per_commit": round((after.jobs - before.jobs) / commits, 2),
        "commit_mean_ms": round(1000 * commit_s / commits, 3),
        "commits_over_25ms": int(_over(after, SLOW) - _over(before, SLOW)),
        "commits_over_100ms": int(_over(after, 0.1) - _over(before, 0.1)),
        "checkpoints": int(checkpoints),
        "checkpoint_mean_ms": round(1000 * checkpoint_s / checkpoints, 3) if checkpoints else None,
        # share of the scenario's wall time the writer spent in commits and checkpoints
        "writer_busy": round((commit_s + checkpoint_s) / seconds, 3) if seconds else None,
    }


def note(d: dict[str, Any]) -> str | None:
    """A line for the report when commits were slow enough to reach the p99, else None."""
    if not d["commits_over_25ms"]:
        return None
    return (
        f"{d['commits_over_25ms']:,} of {d['group_commits']:,} SQLite group commits took over "
        f"25 ms ({d['commits_over_100ms']:,} over 100 ms; mean {d['commit_mean_ms']:.2f} ms, "
        f"{d['jobs_per_commit']:.1f} jobs each): the WAL's fsync, which every write request "
        "in such a batch waits for"
    )
