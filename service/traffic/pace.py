"""Whether a machine's shadowed requests leave it idle between them, kept where every serving
process sees it.

gunicorn's workers take turns with the requests (and the gRPC server has its own), so each sees only
its share: one client sending as fast as it is answered, its requests spread over two workers,
looks to each worker like a client pausing between requests. The pace that says whether the
service is idle between requests is that of them all. So it lives in a 24-byte file of the state
folder, mapped by every process that shadows: the latest request's end, and the share of recent
gaps between requests of at least ``quiet`` seconds (an exponential average, the latest weighing
``GAP_WEIGHT``). The service counts as quiet while that share is at least ``QUIET_SHARE``: a pause
of the clients lengthens every gap, while work beside the requests (a shadow's own comparisons,
which slow the next request) lengthens some; the mean gap would count those too, and one stall of
a few milliseconds lifts it above ``quiet`` for a dozen requests.

Updates take no lock: two processes ending a request at the same moment may lose one sample. Without
a usable state folder (full, read-only) a process keeps the pace of its own requests, and says so
in the log.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
from pathlib import Path

log = logging.getLogger(__name__)

GAP_WEIGHT = 0.2  # of the latest gap in the share: a change of pace shows within a few requests
QUIET_SHARE = 0.8
# The latest request's end (time.monotonic; 0: none yet), the share of quiet gaps, and whether
# it is known (1: a gap has been seen; 0: not yet).
_LAYOUT = struct.Struct("ddd")


class Pace:
    def __init__(self, path: Path | None = None, *, quiet: float = 0.0015):
        self.path, self.quiet = path, quiet
        self._memory: mmap.mmap | None = None

    def _mapped(self) -> mmap.mmap:
        if self._memory is None:
            self._memory = _map(self.path) if self.path is not None else None
            if self._memory is None:
                self._memory = mmap.mmap(-1, _LAYOUT.size)
        return self._memory

    def ended(self, now: float) -> None:
        """Count a request that ended at ``now`` (``time.monotonic()``)."""
        memory = self._mapped()
        last, share, known = _LAYOUT.unpack_from(memory)
        if 0 < last <= now:
            was_quiet = float(now - last >= self.quiet)
            share = share + GAP_WEIGHT * (was_quiet - share) if known else was_quiet
            known = 1.0
        elif last > now:  # written before this machine's clock began (a reboot): start again
            share, known = 0.0, 0.0
        _LAYOUT.pack_into(memory, 0, now, share, known)

    def is_quiet(self) -> bool:
        """Whether nearly all recent gaps between requests were ``quiet`` seconds or longer (False
        before there was one)."""
        _, share, known = _LAYOUT.unpack_from(self._mapped())
        return bool(known) and share >= QUIET_SHARE


def _map(path: Path) -> mmap.mmap | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Its blocks allocated now: a write into a mapped hole of a full disk would be a SIGBUS.
            os.posix_fallocate(descriptor, 0, _LAYOUT.size)
            return mmap.mmap(descriptor, _LAYOUT.size)
        finally:
            os.close(descriptor)
    except (OSError, ValueError) as exc:
        log.warning(
            "shadow pace file %s unusable (%s): this process keeps the pace of its own requests", path, exc
        )
        return None
