"""Benchmarks: scripts that print JSON with their figures and the machine they ran on."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def machine() -> dict:
    """What the figures were measured on."""
    import numpy as np

    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def best_microseconds(sides: dict[str, Callable[[], object]], repeats: int, calls: int) -> dict[str, float]:
    """Microseconds per call of each side, timed in turn ``repeats`` times (interleaved, so that the
    machine's slow moments fall on every side), the best of each."""
    best = dict.fromkeys(sides, float("inf"))
    for _ in range(repeats):
        for side, call in sides.items():
            started = time.perf_counter()
            for _ in range(calls):
                call()
            best[side] = min(best[side], (time.perf_counter() - started) / calls * 1e6)
    return best


def shipped_store(target: Path) -> Path:
    """A model store at ``target`` holding only the shipped seed model, whatever else the
    repository's model_store/ holds (a developer's own models and defaults)."""
    from service.seed import copy_seed

    return copy_seed(REPO / "model_store", target)
