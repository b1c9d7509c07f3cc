"""A shadow's work, off the request path: ``ShadowQueue.put`` (called once the client's answer is
sent) only appends the request's pixels and answer to a bounded queue, and a thread of the worker
process runs the shadow on what is queued.

When that thread runs depends on how busy the service is: on the ``pace`` of the shadowed requests
of every process on the machine (``service.traffic.pace``). Requests that nearly all come at least
``pace.quiet`` seconds apart leave the service idle between them: the thread wakes as soon as a
request is answered, and its comparison is done in that idle time, before the next request comes.
Closer together there is no such time, and any work beside the requests costs their latency, on
this 2-vCPU machine wherever it runs (``benchmarks/traffic_shadow.py``: comparing everything, every
50 ms or at once, doubled the p99 of one client sending as fast as it is answered). So a busy
service's thread wakes every ``interval`` seconds.

Either way, one wake compares at most ``budget`` images, taken evenly from what waits, in one
forward pass, and counts the rest as dropped: a quiet service compares every request of up to
``budget`` images (and part of a bigger one), a busy one a sample. The verdict's figures are those
of the compared images; ``dropped`` says how many were not.

Bounded: beyond ``capacity`` waiting images, a request's comparison is dropped and counted too,
never queued without end.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from service.traffic.pace import Pace
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
        interval: float = 2.0,
        budget: int = 32,
        pace: Pace | None = None,
    ):
        self.verdicts, self.capacity, self.interval, self.budget = verdicts, capacity, interval, budget
        self.pace = pace or Pace()
        self._waiting: list[_Waiting] = []
        self._images = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pid: int | None = None  # the process whose thread runs the queue (gunicorn forks)

    def put(self, route: Route, answered: int, pixels: np.ndarray, probabilities: np.ndarray, unit: bool):
        with self._lock:
            self.pace.ended(time.monotonic())
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="shadow", daemon=True).start()
            room = self._images + len(pixels) <= self.capacity
            if room:
                self._waiting.append(_Waiting(route, answered, pixels, probabilities, unit))
                self._images += len(pixels)
                if self.pace.is_quiet():
                    self._wake.set()
        if not room:
            self.verdicts.dropped(route, len(pixels))

    def run_waiting(self) -> None:
        """Compare at most ``budget`` of the images waiting now, taken evenly from the waiting
        requests, in one forward pass per model, revision, shadow and scale; drop the others."""
        with self._lock:
            waiting, self._waiting, self._images = self._waiting, [], 0
        waiting, left = sample_evenly(waiting, self.budget)
        for route, images in left.items():
            self.verdicts.dropped(route, images)
        groups: dict[tuple, list[_Waiting]] = defaultdict(list)
        for item in waiting:
            groups[(item.route.name, item.route.revision, item.route.shadow, item.unit)].append(item)
        for items in groups.values():
            answered = np.concatenate([np.full(len(i.pixels), i.answered) for i in items])
            pixels = np.concatenate([i.pixels for i in items])
            probabilities = np.concatenate([i.probabilities for i in items])
            self.verdicts.shadow(items[0].route, answered, pixels, probabilities, items[0].unit)
            time.sleep(0)  # between forward passes, the worker's requests take the interpreter first

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.run_waiting()
            except Exception:
                log.exception("comparing shadow answers failed")


def sample_evenly(waiting: list[_Waiting], budget: int) -> tuple[list[_Waiting], dict[Route, int]]:
    """At most ``budget`` images of ``waiting``, from requests spread evenly over it (the last one
    taken cut to fit), and the images left out, by route."""
    kept: list[_Waiting] = []
    room = budget
    step = max(1.0, len(waiting) / max(budget, 1))
    chosen = {int(k * step) for k in range(len(waiting)) if int(k * step) < len(waiting)}
    left: dict[Route, int] = defaultdict(int)
    for index, item in enumerate(waiting):
        take = min(room, len(item.pixels)) if index in chosen else 0
        if take:
            kept.append(
                _Waiting(item.route, item.answered, item.pixels[:take], item.probabilities[:take], item.unit)
            )
            room -= take
        if take < len(item.pixels):
            left[item.route] += len(item.pixels) - take
    return kept, dict(left)
