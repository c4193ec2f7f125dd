"""Prometheus metrics of one process (exposed at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    """Every counter consentry keeps; one registry per app so tests can build many apps."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "consentry_http_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "consentry_http_request_duration_seconds",
            "Request latency by route",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.tokens_issued = Counter(
            "consentry_tokens_issued_total",
            "Token endpoint successes by grant type (refresh_token = a rotation)",
            ["grant_type"],
            registry=self.registry,
        )
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
