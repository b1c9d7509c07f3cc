"""A shadow's work, off the request path: ``ShadowQueue.put`` (called once the client's answer is
sent) only appends the request's pixels and answer to a bounded queue; a thread of the worker
process runs the shadow on what is queued every ``interval`` seconds (sooner when ``batch`` images
wait), in chunks of ``chunk`` images, yielding the interpreter between them. A forward pass per
chunk instead of one per request, off the request's thread, is what keeps a shadow at fraction
1.0 from costing requests their latency.

Bounded: beyond ``capacity`` waiting images, a request's comparison is dropped and counted
(``dropped`` in the verdict's figures), never queued without end.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from service.traffic.router import Route
from service.traffic.verdict import Verdicts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Waiting:
    route: Route
    answered: int
    pixels: np.ndarray
    probabilities: np.ndarray
    unit: bool


class ShadowQueue:
    def __init__(
        self,
        verdicts: Verdicts,
        *,
        capacity: int = 8192,
        batch: int = 512,
        interval: float = 0.05,
        chunk: int = 32,
    ):
        self.verdicts, self.capacity, self.batch, self.interval = verdicts, capacity, batch, interval
        self.chunk = chunk
        self._waiting: list[_Waiting] = []
        self._images = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pid: int | None = None  # the process whose thread runs the queue (gunicorn forks)

    def put(self, route: Route, answered: int, pixels: np.ndarray, probabilities: np.ndarray, unit: bool):
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="shadow", daemon=True).start()
            room = self._images + len(pixels) <= self.capacity
            if room:
                self._waiting.append(_Waiting(route, answered, pixels, probabilities, unit))
                self._images += len(pixels)
                if self._images >= self.batch:
                    self._wake.set()
        if not room:
            self.verdicts.dropped(route, len(pixels))

    def run_waiting(self) -> None:
        """Compare everything waiting now, in batches of one model, revision, shadow and scale."""
        with self._lock:
            waiting, self._waiting, self._images = self._waiting, [], 0
        groups: dict[tuple, list[_Waiting]] = defaultdict(list)
        for item in waiting:
            groups[(item.route.name, item.route.revision, item.route.shadow, item.unit)].append(item)
        for items in groups.values():
            answered = np.concatenate([np.full(len(i.pixels), i.answered) for i in items])
            pixels = np.concatenate([i.pixels for i in items])
            probabilities = np.concatenate([i.probabilities for i in items])
            for start in range(0, len(pixels), self.chunk):
                rows = slice(start, start + self.chunk)
                self.verdicts.shadow(
                    items[0].route, answered[rows], pixels[rows], probabilities[rows], items[0].unit
                )
                time.sleep(0)  # between chunks, the worker's requests take the interpreter first

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.run_waiting()
            except Exception:
                log.exception("comparing shadow answers failed")
