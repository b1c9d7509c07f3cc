"""The shadow's queue: comparisons run at once in a worker whose requests leave it idle between
them; a busy one keeps a uniform sample of its requests for its tick and counts the rest as
dropped."""

from __future__ import annotations

import os
import sys
import time
import weakref

import numpy as np
import pytest

from service.traffic.pace import Pace
from service.traffic.router import Route
from service.traffic.shadow import ShadowQueue

ROUTE = Route("mnist", 1, shadow=2, revision="r1")


class Recorder:
    """Stands in for ``Verdicts``: counts the images each call was given."""

    def __init__(self) -> None:
        self.compared: list[int] = []
        self.answered: list[int] = []
        self.dropped_images = 0

    def shadow(self, route, answered, pixels, probabilities, unit) -> None:
        self.compared.append(len(pixels))
        self.answered.extend(np.broadcast_to(answered, len(pixels)).tolist())

    def dropped(self, route, images: int) -> None:
        self.dropped_images += images


def _queue(quiet: float, **options) -> tuple[ShadowQueue, Recorder]:
    recorder = Recorder()
    # No tick runs a comparison during a test unless it asks for one: only the pace can.
    return ShadowQueue(recorder, pace=Pace(quiet=quiet), **{"interval": 3600, **options}), recorder


def _put(queue: ShadowQueue, answered: int = 1, images: int = 1) -> np.ndarray:
    pixels, probabilities = np.zeros((images, 784), np.uint8), np.full((images, 10), 0.1)
    queue.put(ROUTE, answered, pixels, probabilities, False)
    return pixels


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


def test_requests_close_together_wait_for_the_tick_which_compares_a_sample():
    queue, recorder = _queue(quiet=1.0, interval=0.3, budget=8)
    for request in range(100):  # back to back: microseconds apart
        _put(queue, answered=request)
    assert recorder.compared == []  # nothing ran beside the requests
    _wait_for(recorder, 8)
    time.sleep(0.05)
    assert recorder.compared == [8]  # one forward pass
    assert len(set(recorder.answered)) == 8 and recorder.answered != list(range(8))
    assert recorder.dropped_images == 92


def test_a_busy_worker_holds_only_the_sample_of_its_requests():
    queue, _ = _queue(quiet=1.0, budget=8)
    held = [weakref.ref(_put(queue, answered=request)) for request in range(100)]
    assert sum(ref() is not None for ref in held) == 8  # the other requests' arrays are freed


def test_every_request_is_as_likely_to_be_in_the_sample():
    queue, recorder = _queue(quiet=1.0, budget=8)
    trials = 600
    for _ in range(trials):
        for request in range(100):
            _put(queue, answered=request)
        queue.run_waiting()
    assert recorder.compared == [8] * trials
    tenths = np.bincount(np.array(recorder.answered) // 10, minlength=10)
    # 480 expected in each tenth of the requests; a sample of the first or last 8 puts 4,800 in one.
    assert tenths.min() >= 380 and tenths.max() <= 580, tenths


def test_a_sample_cuts_a_batch_request_to_the_budget_and_counts_the_rest():
    queue, recorder = _queue(quiet=1.0, budget=32)
    _put(queue, images=5)
    _put(queue, images=100)
    queue.run_waiting()
    assert recorder.compared == [32] and recorder.dropped_images == 73  # 68 of the big one, then 5 more
    _put(queue, images=3)
    queue.run_waiting()  # within the budget: all of them
    assert recorder.compared == [32, 3] and recorder.dropped_images == 73


def test_a_service_turning_quiet_compares_a_sample_of_its_backlog_not_all_of_it():
    queue, recorder = _queue(quiet=0.01, budget=8)
    for request in range(100):  # busy: they wait for a tick that does not come in this test
        _put(queue, answered=request)
    for request in range(100, 110):  # then 20 ms apart: the service turns quiet, and each wakes it
        time.sleep(0.02)
        _put(queue, answered=request)
    _wait_for(recorder, 8 + 1)
    time.sleep(0.05)
    assert max(recorder.compared) <= 8  # one forward pass of the budget at most, per wake
    assert 109 in recorder.answered  # the latest request is compared
    assert recorder.dropped_images >= 90  # most of the backlog was not


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own niceness is Linux's")
def test_comparisons_run_at_the_lowest_priority_and_requests_keep_theirs():
    before = os.getpriority(os.PRIO_PROCESS, 0)  # 0: on Linux, the calling thread
    queue, recorder = _queue(quiet=0.002)
    _put(queue)
    deadline = time.monotonic() + 10
    while os.getpriority(os.PRIO_PROCESS, queue.thread.native_id) != 19:
        assert time.monotonic() < deadline, os.getpriority(os.PRIO_PROCESS, queue.thread.native_id)
        time.sleep(0.005)
    assert os.getpriority(os.PRIO_PROCESS, 0) == before
    time.sleep(0.05)
    _put(queue)  # compared at once, by that thread
    _wait_for(recorder, 2)
