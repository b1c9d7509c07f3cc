"""The verdict on the versions of a traffic policy: what each answered (requests, errors, images,
mean confidence) and, for a shadow, how often it agrees with the version that answered (labels)
and by how much its probabilities differ, with a few disagreements kept for a person to look at.

Figures go to Prometheus counters labelled (model, version, policy revision), summed over the
workers by ``/metrics`` and by ``figures``. Decisions are taken by each worker on what it has seen
itself since the revision began (at least ``min_requests``): a version of the split that fails too
often, or a shadow that agrees too rarely, leaves the split (never the model's default version),
and the policy records an event that says why.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import numpy as np

from service.api.metrics import Metrics
from service.errors import BackpropError
from service.files import atomic_write
from service.images import grey_levels
from service.registry import ModelRegistry
from service.store import ModelStore
from service.traffic import policy as policies
from service.traffic.policy import EXAMPLES
from service.traffic.router import Route, TrafficRouter

log = logging.getLogger(__name__)
MAX_EXAMPLES = 8
EXAMPLE_REFRESH_SECONDS = 10.0  # a slot is rewritten at most this often: disagreements cost no disk


class Verdicts:
    def __init__(self, store: ModelStore, registry: ModelRegistry, router: TrafficRouter, metrics: Metrics):
        self.store, self.registry, self.router, self.metrics = store, registry, router, metrics
        self._seen: dict[tuple[str, str, int], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._revisions: dict[str, str] = {}
        self._lock = threading.Lock()

    def _count(self, route: Route, version: int, **amounts: float) -> dict[str, float]:
        self.metrics.count_traffic(route.name, version, route.revision, **amounts)
        with self._lock:
            if self._revisions.get(route.name) != route.revision:  # a new policy: count afresh
                self._revisions[route.name] = route.revision
                for key in [key for key in self._seen if key[0] == route.name]:
                    del self._seen[key]
            seen = self._seen[(route.name, route.revision, version)]
            for key, amount in amounts.items():
                seen[key] += amount
            return dict(seen)

    def answered(self, route: Route, probabilities: np.ndarray) -> None:
        confidence = float(probabilities.max(axis=1).sum())
        self._count(route, route.version, requests=1, images=len(probabilities), confidence=confidence)

    def failed(self, route: Route, version: int, why: str) -> None:
        seen = self._count(route, version, requests=1, errors=1)
        policy = self.router.policy(route.name)
        if policy is None or policy.revision != route.revision or seen["requests"] < policy.min_requests:
            return
        rate = seen["errors"] / seen["requests"]
        if rate > policy.max_error_rate and str(version) in policy.split:
            reason = (
                f"failed {int(seen['errors'])} of {int(seen['requests'])} requests ({rate:.0%}), over the "
                f"{policy.max_error_rate:.0%} allowed (the last: {why})"
            )
            self._leave(route, version, reason)

    def dropped(self, route: Route, images: int) -> None:
        """Images of a shadowed request left out of the sample compared (``service.traffic.shadow``)."""
        self._count(route, route.shadow, dropped=images)

    def shadow(self, route: Route, answered, pixels: np.ndarray, probabilities: np.ndarray, unit: bool):
        """Run the route's shadow on ``pixels`` (N, 784) and compare it with what answered them
        (``answered``: the version, or one per image), after the clients have their answers:
        nothing here may raise."""
        try:
            self._shadow(route, answered, pixels, probabilities, unit)
        except Exception:
            log.exception("the shadow of %s v%s failed", route.name, route.shadow)

    def _shadow(self, route: Route, answered, pixels, probabilities, unit: bool) -> None:
        version = route.shadow
        try:
            theirs = self.registry.get(route.name, version).predict(pixels, unit_scale=unit)
        except BackpropError as exc:
            self.failed(route, version, exc.message)
            return
        same = theirs.argmax(axis=1) == probabilities.argmax(axis=1)
        difference = float(np.abs(theirs - probabilities).mean(axis=1).sum())
        seen = self._count(route, version, compared=len(same), agreed=int(same.sum()), difference=difference)
        if not same.all():
            row = int(np.argmin(same))
            by = int(np.broadcast_to(answered, same.shape)[row])
            self._keep_example(route, by, pixels, probabilities, theirs, row, unit)
        policy = self.router.policy(route.name)
        if policy is None or policy.revision != route.revision or seen["compared"] < policy.min_requests:
            return
        agreement = seen["agreed"] / seen["compared"]
        if agreement < policy.min_agreement:
            reason = (
                f"agreed with the answering version on {agreement:.1%} of {int(seen['compared'])} images, "
                f"below the {policy.min_agreement:.0%} asked"
            )
            if str(version) in policy.split:
                self._leave(route, version, reason)
            else:
                policies.decide(self.store, route.name, route.revision, version, "disagrees", reason)

    def _leave(self, route: Route, version: int, reason: str) -> None:
        if version == self.store.default_version(route.name):
            return  # the default version is where traffic goes back to: it never leaves
        if policies.decide(self.store, route.name, route.revision, version, "left_split", reason):
            self.router.forget()

    def _keep_example(self, route: Route, answered: int, pixels, ours, theirs, row: int, unit: bool) -> None:
        folder = self.store.model_dir(route.name) / EXAMPLES
        with self._lock:
            seen = self._seen[(route.name, route.revision, route.shadow)]
            seen["disagreements"] += 1
            slot = int(seen["disagreements"]) % MAX_EXAMPLES
        path = folder / f"{route.revision}-{slot}.json"
        try:
            if path.exists() and time.time() - path.stat().st_mtime < EXAMPLE_REFRESH_SECONDS:
                return
            example = {
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "pixels": grey_levels(pixels[row], unit=unit).tolist(),
                "answered": _answer(answered, ours[row]),
                "shadow": _answer(route.shadow, theirs[row]),
            }
            folder.mkdir(exist_ok=True)
            atomic_write(path, json.dumps(example).encode())
        except OSError as exc:  # a full disk costs the example, never the request
            log.warning("could not keep a disagreement of %s: %s", route.name, exc)

    def figures(self, name: str, revision: str) -> dict[str, dict[str, Any]]:
        """Per version: requests, errors, images, mean confidence; a shadow's compared images,
        agreement and mean absolute difference of probabilities. Summed over this replica's workers."""
        figures = {}
        for version, totals in self.metrics.traffic_totals(name, revision).items():
            shown: dict[str, Any] = {
                "requests": int(totals.get("requests", 0)),
                "errors": int(totals.get("errors", 0)),
                "images": int(totals.get("images", 0)),
                "mean_confidence": _ratio(totals.get("confidence", 0), totals.get("images", 0)),
            }
            if totals.get("compared") or totals.get("dropped"):
                shown.update(
                    dropped=int(totals.get("dropped", 0)),
                    compared=int(totals.get("compared", 0)),
                    agreement=_ratio(totals.get("agreed", 0), totals.get("compared", 0)),
                    mean_absolute_difference=_ratio(totals.get("difference", 0), totals.get("compared", 0)),
                )
            figures[str(version)] = shown
        return figures

    def examples(self, name: str, revision: str) -> list[dict[str, Any]]:
        folder = self.store.model_dir(name) / EXAMPLES
        found = []
        for path in sorted(folder.glob(f"{revision}-*.json")):
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return sorted(found, key=lambda example: example.get("at", ""))


def _answer(version: int, probabilities: np.ndarray) -> dict[str, Any]:
    label = int(probabilities.argmax())
    return {"version": version, "label": label, "probabilities": probabilities.round(6).tolist()}


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 6) if whole else None
