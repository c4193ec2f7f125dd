"""consentry.metrics: the request counter and latency histogram, exposed with
prometheus_client's own names, buckets and rules, and the SQLite writer's families."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from consentry.metrics import LATENCY_BUCKETS, Metrics
from consentry.store.db import WriterStats
from tests.conftest import TEST_DATABASE, Server


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_histogram_matches_prometheus_client_for_the_same_observations() -> None:
    values = [0.0, 0.001, 0.0011, 0.0025, 0.004, 0.05, 0.3, 1.0, 2.5, 2.6, 30.0]
    m = Metrics()
    reference = CollectorRegistry()
    h = Histogram("consentry_http_request_duration_seconds", "x", ["route"],
                  registry=reference, buckets=LATENCY_BUCKETS)
    for v in values:
        m.http.observe("GET", "/v3/from-fields", "200", v)
        h.labels("/v3/from-fields").observe(v)
    ours, theirs = generate_latest(m.registry).decode(), generate_latest(reference).decode()
    for suffix in ("_bucket", "_count", "_sum"):
        name = "consentry_http_request_duration_seconds" + suffix
        assert _samples(ours, name) == _samples(theirs, name)


def test_requests_are_counted_by_method_route_and_status() -> None:
    m = Metrics()
    for status in ("200", "200", "401"):
        m.http.observe("POST", "/v3/token", status, 0.002)
    got = _samples(generate_latest(m.registry).decode(), "consentry_http_requests_total")
    assert got == {
        (("method", "POST"), ("route", "/v3/token"), ("status", "200")): 2.0,
        (("method", "POST"), ("route", "/v3/token"), ("status", "401")): 1.0,
    }


def test_sqlite_writer_families_are_rendered_from_its_stats() -> None:
    """The writer's commit and checkpoint timings become Prometheus histograms (cumulative
    buckets, count, sum) and its jobs a counter, read when /metrics is scraped."""
    bounds = (0.001, 0.01)
    stats = WriterStats(
        jobs=40,
        bounds=bounds,
        commits=((3, 1, 2), 0.5),  # 3 <= 1 ms, 1 <= 10 ms, 2 over every bound
        checkpoints=((0, 4, 0), 0.02),
    )
    source: list[WriterStats | None] = [stats]
    m = Metrics()
    m.watch_sqlite_writer(lambda: source[0])
    text = generate_latest(m.registry).decode()
    commits = _samples(text, "consentry_sqlite_group_commit_seconds_bucket")
    assert commits == {
        (("le", "0.001"),): 3.0,
        (("le", "0.01"),): 4.0,
        (("le", "+Inf"),): 6.0,
    }
    assert _samples(text, "consentry_sqlite_group_commit_seconds_count") == {(): 6.0}
    assert _samples(text, "consentry_sqlite_group_commit_seconds_sum") == {(): 0.5}
    assert _samples(text, "consentry_sqlite_checkpoint_seconds_count") == {(): 4.0}
    assert _samples(text, "consentry_sqlite_write_jobs_total") == {(): 40.0}
    source[0] = None  # PostgreSQL: no writer, no families
    text = generate_latest(m.registry).decode()
    assert "consentry_sqlite" not in text


def test_a_servers_metrics_show_its_sqlite_writer(server: Server) -> None:
    """On SQLite, token requests are write jobs of the group-commit writer, and /metrics
    counts them and the commits that carried them; on PostgreSQL there is no such writer."""
    def scrape() -> str:
        r = httpx.get(f"{server.url}/metrics", timeout=30)
        assert r.status_code == 200
        return r.text

    before = scrape()
    for _ in range(3):
        r = server.token(server.client, grant_type="client_credentials")
        assert r.status_code == 200, r.text
    after = scrape()
    if TEST_DATABASE != "sqlite":
        assert "consentry_sqlite_" not in after
        return
    jobs = lambda t: _samples(t, "consentry_sqlite_write_jobs_total").get((), 0.0)  # noqa: E731
    commits = lambda t: _samples(  # noqa: E731
        t, "consentry_sqlite_group_commit_seconds_count"
    ).get((), 0.0)
    assert jobs(after) >= jobs(before) + 3
    assert 1 <= commits(after) - commits(before) <= jobs(after) - jobs(before)
    assert _samples(after, "consentry_sqlite_group_commit_seconds_sum")[()] > 0
