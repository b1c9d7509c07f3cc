"""The batch loaders: the same batches whether made in turn, in a thread or in a forked process."""

import os
import signal
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from service.nn.augment import Augmentation
from service.nn.loader import BatchProcess, batches, can_fork

pytestmark = pytest.mark.skipif(not can_fork(), reason="BatchProcess forks, which needs Linux")

WARPS = Augmentation(shift=2, rotate=10, scale=0.1, shear=10, elastic_alpha=30, elastic_sigma=5)


def _data(n: int = 100):
    rng = np.random.default_rng(7)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)


def _source(x, y, rng, epochs=2, batch_size=32):
    return batches(x, y, batch_size=batch_size, epochs=epochs, rng=rng, augmentation=WARPS, background=-0.4)


def _process(source, rng, depth=3, batch_size=32, **kwargs):
    return BatchProcess(
        source,
        depth=depth,
        batch_size=batch_size,
        features=784,
        dtype=np.float32,
        label_dtype=np.int64,
        rng=rng,
        **kwargs,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_process_makes_the_batches_made_in_turn_and_hands_back_the_generators_state():
    x, y = _data()
    here_rng, there_rng = np.random.default_rng(3), np.random.default_rng(3)
    # One BLAS thread, as the loader thread has on two cores: the elastic field's smoothing is a
    # matrix product, whose last bits depend on how BLAS splits it.
    with threadpool_limits(limits=1, user_api="blas"):
        expected = list(_source(x, y, here_rng))
    with _process(_source(x, y, there_rng), there_rng) as loader:
        got = list(loader)
    assert [len(yb) for _, yb in got] == [32, 32, 32, 4] * 2  # the last batch of an epoch is smaller
    for (xa, ya), (xb, yb) in zip(expected, got, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert there_rng.random() == here_rng.random()  # as if the batches had been made here
    assert len({id(xb) for xb, _ in got}) == len(got)  # new arrays, not views of the ring


def test_its_error_is_raised_in_the_consumer_and_the_child_is_gone():
    def failing():
        yield np.zeros((2, 784), np.float32), np.zeros(2, np.int64)
        raise ValueError("disk gone")

    def unpicklable():
        raise ValueError(lambda: None)
        yield

    rng = np.random.default_rng(0)
    for source, match in ((failing(), "disk gone"), (unpicklable(), "making training batches failed")):
        with _process(source, rng, depth=2, batch_size=2) as loader, pytest.raises(Exception, match=match):
            list(loader)
        assert not _alive(loader._pid)


def test_leaving_early_stops_the_child_and_frees_its_memory():
    def endless():
        while True:
            yield np.ones((8, 784), np.float32), np.arange(8)

    with _process(endless(), np.random.default_rng(0), depth=2, batch_size=8) as loader:
        xb, yb = next(loader)
        pid = loader._pid
    assert xb.sum() == 8 * 784 and list(yb) == list(range(8))  # copies outlive the ring
    assert not _alive(pid) and loader._memory.closed
    assert loader.shared_bytes == 2 * 8 * 784 * 4 + 2 * 8 * 8


def test_the_child_ignores_the_stop_signals_its_process_group_gets():
    """A clean stop signals the training worker's whole group; only the worker decides when the
    batches stop, at a batch boundary."""
    x, y = _data(400)
    rng = np.random.default_rng(1)
    with _process(_source(x, y, rng, epochs=3), rng, depth=2) as loader:
        next(loader)
        for sig in (signal.SIGTERM, signal.SIGINT):
            os.kill(loader._pid, sig)
        time.sleep(0.1)
        assert len(list(loader)) == 3 * 13 - 1
