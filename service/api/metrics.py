"""Prometheus metrics, correct across gunicorn worker processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``backprop serve`` and the container do this), every
worker writes its samples to files there and ``/metrics`` aggregates all of them; otherwise the
metrics live in a registry of this app alone (so tests can build many apps).

prometheus_client writes those files through memory maps. On a full disk a write to a page that
has no block yet is a SIGBUS, which kills the worker, then its replacement, in a loop. So each
worker allocates its files' blocks up front; when even that fails, that worker keeps its metrics
in memory (``/metrics`` from it then shows its own samples only) and goes on serving.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from service import drift
from service.drift_window import AnswerWindows
from service.files import open_allocated

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Room for about 4,000 labelled samples per file: far more than these metrics' label sets.
PREALLOCATED_BYTES = 1 << 20
_FILE_KINDS = ("counter", "histogram", "gauge_max")
# The verdict on a traffic policy's versions (service.traffic.verdict), by (model, version, policy).
TRAFFIC_COUNTERS = {
    "requests": "requests a version of a traffic policy answered (or failed)",
    "errors": "requests a version of a traffic policy failed",
    "images": "images a version of a traffic policy classified",
    "confidence": "sum of the top probability of each image a version classified",
    "compared": "images a shadow also classified",
    "agreed": "images a shadow gave the answering version's label",
    "difference": "sum over images of the mean absolute difference of a shadow's probabilities",
    "dropped": "images a shadow did not classify: a busy worker compares a sample of its requests",
}
_TRAFFIC_PREFIX = "backprop_traffic_"


def preallocate_files(folder: str, pid: int) -> bool:
    """Give this process's metric files (prometheus_client's names) their blocks; False if the
    disk cannot, in which case nothing is left behind."""
    made: list[str] = []
    try:
        for kind in _FILE_KINDS:
            path = os.path.join(folder, f"{kind}_{pid}.db")
            made.append(path)
            os.close(open_allocated(path, PREALLOCATED_BYTES))
    except OSError as exc:
        log.warning(
            "metrics files cannot be allocated in %s (%s): this worker keeps them in memory", folder, exc
        )
        for path in made:
            with contextlib.suppress(OSError):
                os.unlink(path)
        return False
    return True


class Metrics:
    def __init__(self) -> None:
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.multiprocess = bool(folder) and preallocate_files(folder, os.getpid())
        if folder and not self.multiprocess:
            # prometheus_client chose file-backed values for the whole process at import; this one
            # process cannot have files, so its values live in memory instead.
            values.ValueClass = values.MutexValue
        # In multiprocess mode samples go to files, so metrics must not sit in a live registry.
        self._registry = None if self.multiprocess else CollectorRegistry()
        self.windows = AnswerWindows(folder if self.multiprocess else None)
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
        self.drift = Counter(
            "backprop_drift_answers_total",
            "images answered, by predicted label and confidence bucket (BACKPROP_DRIFT)",
            ["model", "version", "label", "confidence"],
            registry=self._registry,
        )
        self.beyond = Counter(
            "backprop_drift_out_of_distribution_total",
            "images answered below their version's out-of-distribution threshold (BACKPROP_DRIFT)",
            ["model", "version"],
            registry=self._registry,
        )
        self.reference = Gauge(
            "backprop_drift_reference_share",
            "a version's shares on its held-out digits, by predicted label or confidence bucket",
            ["model", "version", "kind", "bin"],
            multiprocess_mode="max",
            registry=self._registry,
        )
        self._drift_children: dict[tuple[str, int, int, int], Any] = {}
        self._references_shown: set[tuple[str, int]] = set()
        labels = ["model", "version", "policy"]
        self.traffic = {
            kind: Counter(_TRAFFIC_PREFIX + kind, doc, labels, registry=self._registry)
            for kind, doc in TRAFFIC_COUNTERS.items()
        }
        # The labelled children, looked up once: labels() costs more than the increment itself.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._image_counters: dict[tuple[str, int], Any] = {}
        self._traffic_counters: dict[tuple[str, str, int, str], Any] = {}

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """One request answered: ``endpoint`` is its route (not its path: bounded labels)."""
        key = (endpoint, method, status)
        children = self._children.get(key)
        if children is None:
            children = self.requests.labels(endpoint, method, str(status)), self.latency.labels(endpoint)
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_images(self, model: str, version: int, images: int) -> None:
        counter = self._image_counters.get((model, version))
        if counter is None:
            counter = self._image_counters[(model, version)] = self.images.labels(model, str(version))
        counter.inc(images)

    def show_reference(self, model: str, version: int, reference: dict) -> None:
        """A version's reference shares as gauges, once per process: what Prometheus needs to compute
        the PSI the drift route computes (docs/operations.md#drift)."""
        if (model, version) in self._references_shown:
            return
        self._references_shown.add((model, version))
        shares = {
            "label": zip(range(len(reference["labels"])), reference["labels"], strict=True),
            "confidence": zip(drift.BUCKET_NAMES, reference["confidence"], strict=True),
        }
        for kind, pairs in shares.items():
            for bin_name, share in pairs:
                self.reference.labels(model, str(version), kind, str(bin_name)).set(share)

    def count_drift(self, model: str, version: int, classes: int, pairs: np.ndarray, beyond: int) -> None:
        """Answers by (label, confidence bucket): ``pairs`` (N, 2); ``beyond`` of them below the
        out-of-distribution threshold. Counted twice: for Prometheus, and by the minute for the drift
        route's recent window."""
        self.windows.count(model, version, classes, pairs, beyond)
        found, times = np.unique(pairs, axis=0, return_counts=True) if len(pairs) > 1 else (pairs, [1])
        for (label, bucket), count in zip(found.tolist(), times, strict=True):
            key = (model, version, label, bucket)
            child = self._drift_children.get(key)
            if child is None:
                child = self.drift.labels(model, str(version), str(label), drift.BUCKET_NAMES[bucket])
                self._drift_children[key] = child
            child.inc(int(count))
        if beyond:
            self.beyond.labels(model, str(version)).inc(beyond)

    def count_traffic(self, model: str, version: int, revision: str, **amounts: float) -> None:
        for kind, amount in amounts.items():
            key = (kind, model, version, revision)
            counter = self._traffic_counters.get(key)
            if counter is None:
                counter = self.traffic[kind].labels(model, str(version), revision)
                self._traffic_counters[key] = counter
            counter.inc(amount)

    def traffic_totals(self, model: str, revision: str) -> dict[int, dict[str, float]]:
        """{version: {kind: total}} of one policy revision, summed over this machine's workers."""
        totals: dict[int, dict[str, float]] = {}
        for family in self._collected().collect():
            if not family.name.startswith(_TRAFFIC_PREFIX):
                continue
            kind = family.name.removeprefix(_TRAFFIC_PREFIX)
            for sample in family.samples:
                labels = sample.labels
                ours = (labels["model"], labels["policy"]) == (model, revision)
                if ours and sample.name.endswith("_total"):
                    version = totals.setdefault(int(labels["version"]), {})
                    version[kind] = version.get(kind, 0.0) + sample.value
        return totals

    def _collected(self) -> CollectorRegistry:
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return registry
        return self._registry

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self._collected()), CONTENT_TYPE_LATEST
