"""A lower CPU priority for work that must never slow the cheap requests (training, the expensive
pool, a traffic shadow's comparisons).

Where Linux schedules by session first (autogroup, on by default on desktops and many servers), a
nice value weighs only against the processes of the same session: ``backprop serve`` starts each
of its children in a session of its own, so a child that leads its session lowers its session's
weight too. One that does not (run by hand from a terminal) leaves its terminal's alone.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

AUTOGROUP = Path("/proc/self/autogroup")


def lower_priority(nice: int) -> None:
    """Add ``nice`` to this process's nice value, and its session's if it leads one."""
    if nice <= 0:
        return
    os.nice(nice)
    if os.getsid(0) == os.getpid():
        with contextlib.suppress(OSError):  # no autogroup here (not Linux, or configured off)
            AUTOGROUP.write_text(f"{nice}\n")


def lower_thread_priority(nice: int) -> None:
    """Set the calling thread's nice value to ``nice``: on Linux a nice value is a thread's own, so
    the process's other threads keep theirs; elsewhere it would be the process's, and nothing is
    changed. Raises OSError where the system refuses."""
    if sys.platform.startswith("linux"):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
