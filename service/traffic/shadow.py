"""A shadow's work, off the request path: ``ShadowQueue.put`` (called once the client's answer is
sent) keeps the request's pixels and answer, or counts them as dropped, and a thread of the worker
process runs the shadow on what was kept.

What waits is a uniform random sample of the requests since the thread last ran (reservoir
sampling): at most ``budget`` requests, each cut to ``budget`` images. So a worker holds at most
``budget`` squared images whatever the load, and the arrays of every other request are freed as
soon as it is answered: every request kept until the thread ran would be about 1,500 requests per
worker at saturation, and the garbage collector's passes over them cost 1.38x the p99 of routing
alone (``benchmarks/traffic_shadow.py``).

When that thread runs depends on how busy the service is: on the ``pace`` of the shadowed requests
of every process on the machine (``service.traffic.pace``). Requests that nearly all come at least
``pace.quiet`` seconds apart leave the service idle between them: the thread wakes as soon as a
request is answered, and its comparison is done in that idle time, before the next request comes.
Closer together there is no such time, and any work beside the requests costs their latency, on
this 2-vCPU machine wherever it runs (comparing everything, every 50 ms or at once, doubled the p99
of one client sending as fast as it is answered). So a busy service's thread wakes every
``interval`` seconds.

Either way, one wake compares at most ``budget`` images in one forward pass: a quiet service
compares every request of up to ``budget`` images (and part of a bigger one), a busy one a sample.
The verdict's figures are those of the compared images; ``dropped`` says how many were not.

The thread runs at the lowest priority, nice 19 (on Linux a thread's own), so that the worker's
requests come first; what that buys is within this machine's noise (``benchmarks/traffic_shadow.py``:
the shadow's p99 over the split's alone, medians of 0.88-1.16x with it, 1.04-1.15x without).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np

from service.priority import lower_thread_priority
from service.traffic.pace import Pace
from service.traffic.router import Route
from service.traffic.verdict import Verdicts

log = logging.getLogger(__name__)

INTERVAL_S = 2.0  # a busy service's thread wakes this often


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
        interval: float = INTERVAL_S,
        budget: int = 32,
        pace: Pace | None = None,
    ):
        self.verdicts, self.interval, self.budget = verdicts, interval, budget
        self.pace = pace or Pace()
        self._waiting: list[_Waiting] = []
        self._seen = 0  # requests since the thread last took what waits
        self._dropped: dict[Route, int] = defaultdict(int)  # images since then, told the verdict then
        self._rng: random.Random | None = None  # drawn from by the process that puts, made there
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pid: int | None = None  # the process whose thread runs the queue (gunicorn forks)
        self.thread: threading.Thread | None = None

    def put(self, route: Route, answered: int, pixels: np.ndarray, probabilities: np.ndarray, unit: bool):
        """Keep a request's images (N, 784) and their answer (N, classes) for the shadow, or count
        them as dropped."""
        cut = max(0, len(pixels) - self.budget)
        if cut:  # one wake compares no more: the rest need not wait
            pixels, probabilities = pixels[: self.budget].copy(), probabilities[: self.budget].copy()
        item = _Waiting(route, answered, pixels, probabilities, unit)
        with self._lock:
            if cut:
                self._dropped[route] += cut
            self.pace.ended(time.monotonic())
            if self._pid != os.getpid():  # a forked worker: its own thread, its own draws
                self._pid, self._rng = os.getpid(), random.Random()
                self.thread = threading.Thread(target=self._run, name="shadow", daemon=True)
                self.thread.start()
            self._seen += 1
            if len(self._waiting) < self.budget:
                self._waiting.append(item)
            else:  # each of the requests seen so far stays with the same chance, budget / seen
                slot = self._rng.randrange(self._seen)
                if slot < self.budget:
                    item, self._waiting[slot] = self._waiting[slot], item
                self._dropped[item.route] += len(item.pixels)
            if self.pace.is_quiet():
                self._wake.set()

    def run_waiting(self) -> None:
        """Compare the images waiting now, at most ``budget`` of them (the requests kept are cut to
        it), in one forward pass per model, revision, shadow and scale; tell the verdicts how many
        images were dropped since the last run."""
        with self._lock:
            waiting, self._waiting, self._seen = self._waiting, [], 0
            dropped, self._dropped = self._dropped, defaultdict(int)
        room = self.budget
        groups: dict[tuple, list[_Waiting]] = defaultdict(list)
        for item in waiting:
            take = min(room, len(item.pixels))
            dropped[item.route] += len(item.pixels) - take
            if take:
                room -= take
                kept = replace(item, pixels=item.pixels[:take], probabilities=item.probabilities[:take])
                groups[(item.route.name, item.route.revision, item.route.shadow, item.unit)].append(kept)
        for items in groups.values():
            answered = np.concatenate([np.full(len(i.pixels), i.answered) for i in items])
            pixels = np.concatenate([i.pixels for i in items])
            probabilities = np.concatenate([i.probabilities for i in items])
            self.verdicts.shadow(items[0].route, answered, pixels, probabilities, items[0].unit)
            time.sleep(0)  # between forward passes, the worker's requests take the interpreter first
        for route, images in dropped.items():
            if images:
                self.verdicts.dropped(route, images)

    def _run(self) -> None:
        try:
            lower_thread_priority(19)
        except OSError as exc:
            log.warning("the shadow's thread keeps the worker's priority: %s", exc)
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.run_waiting()
            except Exception:
                log.exception("comparing shadow answers failed")
