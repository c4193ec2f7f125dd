"""consentry.metrics.RequestStats: the request counter and latency histogram, exposed with
prometheus_client's own names, buckets and rules."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from consentry.metrics import LATENCY_BUCKETS, Metrics


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
