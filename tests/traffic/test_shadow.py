"""The shadow's queue: comparisons run at once in a worker whose requests leave it idle between
them, and wait to be batched in a busy one."""

from __future__ import annotations

import time

import numpy as np

from service.traffic.router import Route
from service.traffic.shadow import ShadowQueue

ROUTE = Route("mnist", 1, shadow=2, revision="r1")
PIXELS = np.zeros((1, 784), dtype=np.uint8)
PROBABILITIES = np.full((1, 10), 0.1)


class Recorder:
    """Stands in for ``Verdicts``: counts the images each call was given."""

    def __init__(self) -> None:
        self.compared: list[int] = []
        self.dropped_images = 0

    def shadow(self, route, answered, pixels, probabilities, unit) -> None:
        self.compared.append(len(pixels))

    def dropped(self, route, images: int) -> None:
        self.dropped_images += images


def _queue(**options) -> tuple[ShadowQueue, Recorder]:
    recorder = Recorder()
    # No interval and no batch size would ever run a comparison during a test: only the pace can.
    return ShadowQueue(recorder, interval=3600, batch=10**9, **options), recorder


def _put(queue: ShadowQueue) -> None:
    queue.put(ROUTE, 1, PIXELS, PROBABILITIES, False)


def _wait_for(recorder: Recorder, images: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while sum(recorder.compared) < images:
        assert time.monotonic() < deadline, recorder.compared
        time.sleep(0.005)


def test_requests_far_apart_are_compared_at_once():
    queue, recorder = _queue(quiet=0.002)
    _put(queue)  # the first request: no pace known yet, so it waits
    time.sleep(0.05)
    assert recorder.compared == []
    _put(queue)  # 50 ms after the first: a quiet worker
    _wait_for(recorder, 2)
    for _ in range(3):
        time.sleep(0.05)
        _put(queue)
    _wait_for(recorder, 5)
    assert sum(recorder.compared) == 5 and recorder.dropped_images == 0


def test_requests_close_together_wait_for_a_batch():
    queue, recorder = _queue(quiet=1.0)
    for _ in range(20):  # back to back: microseconds apart
        _put(queue)
    time.sleep(0.1)
    assert recorder.compared == []  # nothing ran beside the requests
    queue.run_waiting()
    assert recorder.compared == [20]  # all of them in one chunk
