"""Prometheus metrics of one process (exposed at ``/metrics``)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# The buckets' "le" labels as Prometheus writes them ("0.001", "1.0", "+Inf").
_LE: tuple[str, ...] = (
    *(floatToGoString(b) for b in LATENCY_BUCKETS),  # type: ignore[no-untyped-call]
    "+Inf",
)


def _buckets(les: Sequence[str], counts: Sequence[float]) -> list[tuple[str, float]]:
    """Prometheus's cumulative (le, count) pairs from per-bucket counts (the last: +Inf)."""
    cumulative = 0.0
    out: list[tuple[str, float]] = []
    for le, in_bucket in zip(les, counts, strict=False):
        cumulative += in_bucket
        out.append((le, cumulative))
    return out


class RequestStats:
    """HTTP request counts and latencies by route: plain numbers on the request path, turned
    into Prometheus families (``consentry_http_requests_total``,
    ``consentry_http_request_duration_seconds``) only when ``/metrics`` is scraped.

    prometheus_client's ``Counter.inc`` and ``Histogram.observe`` validate and take a lock
    on every call: 28 k instructions a request, 8 % of a bearer GET. Requests are only ever
    counted on the event-loop thread, which also renders ``/metrics``, so dict updates do.
    Buckets are Prometheus's: a value goes to the first bound it is less than or equal to."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}
        # Per route: the count of each bucket (not cumulative), then +Inf's, then the sum.
        self._latency: dict[str, list[float]] = {}

    def observe(self, method: str, route: str, status: str, seconds: float) -> None:
        key = (method, route, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        row = self._latency.get(route)
        if row is None:
            row = self._latency[route] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        row[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        row[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        counts = CounterMetricFamily(
            "consentry_http_requests",
            "HTTP requests by route and status",
            labels=["method", "route", "status"],
        )
        for labels, n in list(self._counts.items()):
            counts.add_metric(list(labels), n)
        yield counts
        latency = HistogramMetricFamily(
            "consentry_http_request_duration_seconds",
            "Request latency by route",
            labels=["route"],
        )
        for route, row in list(self._latency.items()):
            latency.add_metric([route], _buckets(_LE, row), row[-1])
        yield latency


class WriterStatsLike(Protocol):
    """``store.db.WriterStats`` as read here (this module imports no layer)."""

    @property
    def jobs(self) -> int: ...
    @property
    def bounds(self) -> tuple[float, ...]: ...
    @property
    def commits(self) -> tuple[tuple[int, ...], float]: ...
    @property
    def checkpoints(self) -> tuple[tuple[int, ...], float]: ...


class SqliteWriterStats:
    """The SQLite group-commit writer's work, read from ``source`` when ``/metrics`` is
    scraped: ``consentry_sqlite_group_commit_seconds`` (one observation per batch: its
    transaction's wall time, the WAL's fsync included — what every write request in it
    waited for at least; a slow disk shows here first), ``consentry_sqlite_checkpoint_seconds``
    (the writer's WAL checkpoints) and ``consentry_sqlite_write_jobs_total`` (writes; jobs
    over commits is the batch size)."""

    def __init__(self, source: Callable[[], WriterStatsLike | None]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        stats = self._source()
        if stats is None:
            return
        les = (*(floatToGoString(b) for b in stats.bounds), "+Inf")  # type: ignore[no-untyped-call]
        for name, doc, (counts, total) in (
            (
                "consentry_sqlite_group_commit_seconds",
                "SQLite group commits: wall time of each batch's transaction, fsync included",
                stats.commits,
            ),
            (
                "consentry_sqlite_checkpoint_seconds",
                "WAL checkpoints run by the SQLite writer (no batch is written meanwhile)",
                stats.checkpoints,
            ),
        ):
            family = HistogramMetricFamily(name, doc)
            family.add_metric([], _buckets(les, counts), total)
            yield family
        jobs = CounterMetricFamily(
            "consentry_sqlite_write_jobs", "Write jobs committed or refused by the SQLite writer"
        )
        jobs.add_metric([], stats.jobs)
        yield jobs


class Metrics:
    """Every counter consentry keeps; one registry per app so tests can build many apps."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http = RequestStats()
        self.registry.register(self.http)
        self.tokens_issued = Counter(
            "consentry_tokens_issued_total",
            "Token endpoint successes by grant type (refresh_token = a rotation)",
            ["grant_type"],
            registry=self.registry,
        )
        self._issued: dict[str, Any] = {}
        self.tokens_revoked = Counter(
            "consentry_tokens_revoked_total",
            "Revocation requests answered (RFC 7009), by token kind found",
            ["kind"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "consentry_rate_limit_rejections_total",
            "Requests refused by a rate limit, by limit",
            ["limit"],
            registry=self.registry,
        )

    def watch_sqlite_writer(self, source: Callable[[], WriterStatsLike | None]) -> None:
        """Expose the SQLite writer's work (``SqliteWriterStats``) read from ``source``."""
        self.registry.register(SqliteWriterStats(source))

    def count_issued(self, grant_type: str) -> None:
        """One more token endpoint success (the label child is looked up once per grant
        type: ``labels()`` validates and locks on every call)."""
        child = self._issued.get(grant_type)
        if child is None:
            child = self._issued[grant_type] = self.tokens_issued.labels(grant_type)
        child.inc()
