"""Training batches made ahead of use: shuffled, gathered and augmented in a background thread.

NumPy releases the GIL in its loops, so while the training thread multiplies matrices the loader
prepares the next batches on the core BLAS leaves idle. The loader alone draws from its
``np.random.Generator``, in a fixed order, so batches do not depend on the thread's timing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np

from service.nn.augment import Augmentation, augment

_DONE = object()


def batches(
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    epochs: int,
    rng: np.random.Generator,
    augmentation: Augmentation | None = None,
    background: float = 0.0,
    dtype: np.dtype | type = np.float32,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(x (B, D) of ``dtype``, y (B,)) batches of ``epochs`` epochs, each epoch every sample once
    in a fresh order, the last batch of an epoch possibly smaller. Every batch is a new array."""
    n = len(y)
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            xb = np.take(x, idx, axis=0).astype(dtype, copy=False)
            if augmentation is not None and augmentation.active:
                xb = augment(xb, rng, augmentation, background=background)
            yield xb, y[idx]


class Prefetcher:
    """Runs an iterator in a background thread, ``depth`` items ahead of its consumer.

    Use as a context manager: leaving it (normally or by an exception) stops the thread. An
    exception raised by the iterator is raised again in the consumer."""

    def __init__(self, items: Iterator, depth: int = 2) -> None:
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-loader", daemon=True)

    def __enter__(self) -> Prefetcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self):
        item = self._queue.get()
        if item is _DONE:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as error:  # noqa: BLE001 - handed over to the consumer, raised there
            self._put(error)
