"""A shadow's work, off the request path: ``ShadowQueue.put`` (called once the client's answer is
sent) only appends the request's pixels and answer to a bounded queue, and a thread of the worker
process runs the shadow on what is queued, in chunks of ``chunk`` images, yielding the interpreter
between them.

When that thread runs depends on how busy the worker is. Its requests ``quiet`` seconds apart or
more on average leave it idle between them: each request's comparison runs at once, in that idle
time, and is done before the next request comes. Closer together there is no such time, and
whatever runs beside the requests costs them their latency: comparisons then wait for the next
``interval`` (or for ``batch`` images), so that one forward pass serves a chunk of requests instead
of each its own, the least work per image.

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

GAP_WEIGHT = 0.2  # of the latest gap between requests in their mean: a change of pace shows in a few


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
        quiet: float = 0.002,
    ):
        self.verdicts, self.capacity, self.batch, self.interval = verdicts, capacity, batch, interval
        self.chunk, self.quiet = chunk, quiet
        self._last_put: float | None = None
        self._gap: float | None = None  # the mean time between requests, the latest weighing most
        self._waiting: list[_Waiting] = []
        self._images = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pid: int | None = None  # the process whose thread runs the queue (gunicorn forks)

    def put(self, route: Route, answered: int, pixels: np.ndarray, probabilities: np.ndarray, unit: bool):
        now = time.monotonic()
        with self._lock:
            if self._last_put is not None:
                since = now - self._last_put
                self._gap = since if self._gap is None else self._gap + GAP_WEIGHT * (since - self._gap)
            self._last_put = now
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="shadow", daemon=True).start()
            room = self._images + len(pixels) <= self.capacity
            if room:
                self._waiting.append(_Waiting(route, answered, pixels, probabilities, unit))
                self._images += len(pixels)
                if self._images >= self.batch or (self._gap is not None and self._gap >= self.quiet):
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
