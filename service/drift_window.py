"""The recent answers the drift route compares with a reference: per (model, version), what each
process answered in each minute of the last day, by label, confidence bucket and whether below the
out-of-distribution threshold.

Prometheus counters only grow, so they cannot say what happened in the last hour without a
Prometheus to keep their history. Each process therefore keeps a ring of one-minute slots: a row per
minute, ``[minute, labels (classes), confidence buckets, below threshold]``, reused a day later.
With a metrics folder (``backprop serve``: the Prometheus multiprocess folder, cleared at start)
the ring is a file there that the other workers read, so any worker's route adds up the answers of
all of them, including those of workers since replaced. Its blocks are allocated up front: a write
through a memory map to a page a full disk cannot give is a SIGBUS. Without a folder, or when the
disk cannot allocate, the ring lives in this process's memory and only this process sees it.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from service import drift
from service.files import open_allocated

log = logging.getLogger(__name__)

SLOT_SECONDS = 60
SLOTS = 24 * 60  # the longest window: a day
_BUCKETS = len(drift.BUCKET_NAMES)


class AnswerWindows:
    """This process's rings, one per (model, version), and the sum of every process's."""

    def __init__(self, folder: str | Path | None, clock: Callable[[], float] = time.time) -> None:
        self._folder = Path(folder, "drift") if folder else None
        self._clock = clock
        self._pid = os.getpid()
        self._rings: dict[tuple[str, int], np.ndarray] = {}
        self._lock = threading.Lock()

    def count(self, model: str, version: int, classes: int, pairs: np.ndarray, beyond: int) -> None:
        """Count answers by (label, confidence bucket), ``pairs`` (N, 2), ``beyond`` of them below the
        out-of-distribution threshold, in the current minute."""
        minute = int(self._clock() // SLOT_SECONDS)
        with self._lock:
            ring = self._rings.get((model, version))
            if ring is None:
                ring = self._rings[(model, version)] = self._ring(model, version, classes)
            row = ring[minute % SLOTS]
            if row[0] != minute:  # a minute of a day ago, or never used
                row[1:] = 0
                row[0] = minute
            if len(pairs) == 1:  # most requests: two increments, not two histograms
                row[1 + pairs[0, 0]] += 1
                row[1 + classes + pairs[0, 1]] += 1
            else:
                row[1 : 1 + classes] += np.bincount(pairs[:, 0], minlength=classes)
                row[1 + classes : -1] += np.bincount(pairs[:, 1], minlength=_BUCKETS)
            row[-1] += beyond

    def counts(self, model: str, version: int, classes: int, seconds: int) -> dict[str, np.ndarray]:
        """Every process's answers of the last ``seconds`` (rounded up to whole minutes, this one
        included): ``labels`` (classes,), ``confidence`` (buckets,) and ``ood`` (1,)."""
        now = int(self._clock() // SLOT_SECONDS)
        first = now - -(-seconds // SLOT_SECONDS) + 1
        total = np.zeros(1 + classes + _BUCKETS + 1, dtype=np.int64)
        for ring in self._every_ring(model, version, classes):
            recent = (ring[:, 0] >= first) & (ring[:, 0] <= now)
            total += ring[recent].sum(axis=0)
        return {
            "labels": total[1 : 1 + classes].astype(np.float64),
            "confidence": total[1 + classes : -1].astype(np.float64),
            "ood": total[-1:].astype(np.float64),
        }

    def _every_ring(self, model: str, version: int, classes: int) -> list[np.ndarray]:
        with self._lock:
            mine = self._rings.get((model, version))
            rings = [] if mine is None else [mine.copy()]
        width = 1 + classes + _BUCKETS + 1
        folder = self._folder_of(model, version)
        others = sorted(folder.glob("*.ring")) if folder and folder.is_dir() else []
        for path in others:
            if path.stem == str(self._pid):
                continue
            try:
                ring = np.fromfile(path, dtype=np.int64)
            except OSError as exc:  # a file being made, or a damaged disk: the others still count
                log.warning("drift counts in %s unreadable: %s", path, exc)
                continue
            if ring.size == SLOTS * width:
                rings.append(ring.reshape(SLOTS, width))
        return rings

    def _folder_of(self, model: str, version: int) -> Path | None:
        return self._folder / model / f"v{version}" if self._folder else None

    def _ring(self, model: str, version: int, classes: int) -> np.ndarray:
        shape = (SLOTS, 1 + classes + _BUCKETS + 1)
        folder = self._folder_of(model, version)
        if folder is not None:
            path = folder / f"{self._pid}.ring"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                size = int(np.prod(shape)) * 8
                fd = open_allocated(path, size)
                try:
                    # A plain array over the map: np.memmap's indexing costs microseconds a request.
                    ring = np.frombuffer(mmap.mmap(fd, size), dtype=np.int64).reshape(shape)
                finally:
                    os.close(fd)
                ring[:, 0] = -1
                return ring
            except OSError as exc:
                log.warning(
                    "drift counts cannot be kept in %s (%s): this process keeps them in memory", folder, exc
                )
                with contextlib.suppress(OSError):
                    path.unlink()
        ring = np.zeros(shape, dtype=np.int64)
        ring[:, 0] = -1
        return ring
