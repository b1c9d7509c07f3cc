"""Prometheus metrics, correct across gunicorn worker processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``backprop serve`` and the container do this), every
worker writes its samples to files there and ``/metrics`` aggregates all of them; otherwise the
metrics live in a registry of this app alone (so tests can build many apps).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # In multiprocess mode samples go to files, so metrics must not sit in a live registry.
        self._registry = None if self.multiprocess else CollectorRegistry()
        self.requests = Counter(
            "backprop_http_requests_total",
            "HTTP requests",
            ["endpoint", "method", "status"],
            registry=self._registry,
        )
        self.latency = Histogram(
            "backprop_http_request_duration_seconds",
            "HTTP request latency",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self._registry,
        )
        self.images = Counter(
            "backprop_predicted_images_total",
            "images classified",
            ["model", "version"],
            registry=self._registry,
        )

    def render(self) -> tuple[bytes, str]:
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self._registry), CONTENT_TYPE_LATEST
