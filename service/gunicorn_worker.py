"""The gunicorn worker behind nginx: a sync worker that leaves idle-time connections to the first.

nginx hands each request to gunicorn on a fresh connection, and every idle sync worker waits in
``select()`` on the same socket: all of them wake, and whichever runs first takes it. At low load
that sends consecutive requests to alternate processes, each of which finds its caches cold after
the other's turn: a prediction reads 2 MB of weights, and one connection's p50 was a quarter longer
than with a single worker. So the worker forked first takes them: from the moment its answer is
written (it then still waits for nginx to close the connection, and the client may already have
sent the next request) until it takes another connection it says so in a byte the pool's workers
share, and another worker that wakes meanwhile leaves the connection to it (for at most
``MAX_DEFER_SECONDS``, should it not be scheduled). While the first works on a request the others
take connections at once, and under load every worker stays busy: a worker that has just answered
takes the next waiting connection without ``select()``.
"""

from __future__ import annotations

import mmap
import time

from gunicorn.workers.sync import SyncWorker

# What a connection may wait for an idle first worker that the kernel has not yet run: a few of
# the scheduler's time slices on a busy machine, and still a small share of a slow request's time.
MAX_DEFER_SECONDS = 0.002
POLL_SECONDS = 0.0001


def idle_flag() -> mmap.mmap:
    """One byte of memory shared with the processes forked after it: 1 while the first worker is free."""
    return mmap.mmap(-1, 1)


class WarmFirstWorker(SyncWorker):
    # Both set by service.gunicorn_conf.pre_fork, in the master, before the worker forks.
    first = False
    first_idle: mmap.mmap | None = None

    def wait(self, timeout):
        if self.first:
            self.first_idle[0] = 1
            return super().wait(timeout)
        ready = super().wait(timeout)
        if ready and self.first_idle is not None:
            deadline = time.monotonic() + MAX_DEFER_SECONDS
            while self.first_idle[0] and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
        return ready

    def handle(self, listener, client, addr):
        if self.first:
            self.first_idle[0] = 0
        return super().handle(listener, client, addr)

    def handle_request(self, listener, req, client, addr):
        try:
            return super().handle_request(listener, req, client, addr)
        finally:
            if self.first:
                self.first_idle[0] = 1
