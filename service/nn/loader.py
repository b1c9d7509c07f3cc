"""Training batches made ahead of use: shuffled, gathered and augmented in a background thread,
or, for warped images, in a process of their own.

NumPy releases the GIL in its loops, so while the training thread multiplies matrices a thread
can prepare the next batches. Warping costs about as much as the training step itself, though, and
a thread must then share the process with BLAS's threads: a forked process at a lower priority
takes only the time the training step leaves idle. Either way the loader alone draws from its
``np.random.Generator``, in a fixed order, so batches do not depend on timing.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing import Pipe

import numpy as np
from threadpoolctl import threadpool_limits

from service.nn.augment import Augmentation, augment

_DONE = object()
log = logging.getLogger(__name__)


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


def can_fork() -> bool:
    """Whether :class:`BatchProcess` can run here: it forks, which only Linux does safely with BLAS."""
    return sys.platform == "linux" and hasattr(os, "fork")


class BatchProcess:
    """Runs a batch iterator in a forked process, up to ``depth`` batches ahead of its consumer.

    Batches come back through a ring of ``depth`` slots of anonymous shared memory (not /dev/shm,
    whose size, 64 MB in a Docker container by default, therefore does not matter); pipes carry
    only slot numbers. The child draws from its copy of ``rng``, whose final state is handed back
    to ``rng`` when the iterator ends, as if the batches had been made here. The child runs at a
    lower priority (``nice``) so that it uses the cores training leaves idle, ignores SIGINT and
    SIGTERM (the parent decides when it stops) and exits when the parent closes its pipe or dies.
    Use as a context manager; each item is a new pair of arrays; an exception raised by the
    iterator is raised again in the consumer.
    """

    def __init__(
        self,
        items: Iterator[tuple[np.ndarray, np.ndarray]],
        *,
        depth: int,
        batch_size: int,
        features: int,
        dtype: np.dtype | type,
        label_dtype: np.dtype | type,
        rng: np.random.Generator,
        nice: int = 10,
    ) -> None:
        self._items, self._rng, self._nice = items, rng, nice
        self._shapes = (
            ((depth, batch_size, features), np.dtype(dtype)),
            ((depth, batch_size), np.dtype(label_dtype)),
        )
        self.shared_bytes = sum(int(np.prod(shape)) * kind.itemsize for shape, kind in self._shapes)
        self._pid = 0

    def __enter__(self) -> BatchProcess:
        self._memory = mmap.mmap(-1, self.shared_bytes)  # MAP_SHARED | MAP_ANONYMOUS: the child sees it
        (x_shape, x_dtype), (y_shape, y_dtype) = self._shapes
        self._x = np.frombuffer(self._memory, x_dtype, int(np.prod(x_shape))).reshape(x_shape)
        self._y = np.frombuffer(self._memory, y_dtype, int(np.prod(y_shape)), offset=self._x.nbytes).reshape(
            y_shape
        )
        self._ready, ready_child = Pipe(duplex=False)
        free_child, self._free = Pipe(duplex=False)
        self._pid = os.fork()
        if self._pid == 0:  # pragma: no cover - the child's coverage is not collected
            try:
                self._ready.close()
                self._free.close()
                self._run(free_child, ready_child)
            finally:
                os._exit(0)
        ready_child.close()
        free_child.close()
        for slot in range(len(self._x)):
            self._free.send(slot)
        log.info(
            "warping training images in process %d, through %.1f MB of anonymous shared memory",
            self._pid,
            self.shared_bytes / 2**20,
        )
        return self

    def __exit__(self, *exc_info) -> None:
        self._free.close()  # the child reads EOF and leaves
        self._ready.close()
        _reap(self._pid)
        self._x = self._y = None
        self._memory.close()

    def __iter__(self) -> BatchProcess:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        try:
            message, detail = self._ready.recv()
        except EOFError:
            raise RuntimeError(
                f"the process making training batches ({self._pid}) exited unexpectedly"
            ) from None
        if message == "done":
            self._rng.bit_generator.state = detail
            raise StopIteration
        if message == "error":
            raise detail
        xb, yb = self._x[message, :detail].copy(), self._y[message, :detail].copy()
        with contextlib.suppress(BrokenPipeError):  # the child made the last batch and left
            self._free.send(message)
        return xb, yb

    def _run(self, free, ready) -> None:  # pragma: no cover - runs in the child
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.nice(self._nice)
        try:
            with threadpool_limits(limits=1, user_api="blas"):
                for xb, yb in self._items:
                    slot = free.recv()
                    self._x[slot, : len(yb)] = xb
                    self._y[slot, : len(yb)] = yb
                    ready.send((slot, len(yb)))
                ready.send(("done", self._rng.bit_generator.state))
        except (EOFError, OSError):
            return  # the parent has gone or stopped reading
        except BaseException as error:  # noqa: BLE001 - handed over to the consumer, raised there
            try:
                ready.send(("error", error))
            except Exception:  # noqa: BLE001 - an exception that cannot be pickled, said in words
                ready.send(("error", RuntimeError(f"making training batches failed: {error!r}")))


def _reap(pid: int, patience: float = 5.0) -> None:
    """Wait for the child ``pid`` to exit; kill it after ``patience`` seconds."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
