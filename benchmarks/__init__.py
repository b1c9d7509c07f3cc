"""Benchmarks: scripts that print JSON with their figures and the machine they ran on."""

from __future__ import annotations

import os
import platform


def machine() -> dict:
    """What the figures were measured on."""
    import numpy as np

    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
