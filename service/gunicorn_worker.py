"""The gunicorn worker behind nginx: a sync worker that leaves idle-time connections to the first.

nginx hands each request to gunicorn on a fresh connection, and every idle sync worker waits in
``select()`` on the same socket: all of them wake, and whichever runs first takes it. At low load
that sends consecutive requests to alternate processes, each of which finds its caches cold after
the other's turn: a prediction reads 2 MB of weights, and one connection's p50 was a quarter longer
than with a single worker. So the worker forked first takes them, and the others, when a wake-up
finds them idle, give it ``DEFER_SECONDS`` to do so. Under load nothing changes: a worker that has
just answered takes the next waiting connection at once, without ``select()``, and every worker
stays busy.
"""

from __future__ import annotations

import time

from gunicorn.workers.sync import SyncWorker

DEFER_SECONDS = 0.0002  # a tenth of one prediction's cold-cache cost, and below its p50


class WarmFirstWorker(SyncWorker):
    first = True  # set by service.gunicorn_conf.post_fork: the first of its pool to be forked

    def wait(self, timeout):
        ready = super().wait(timeout)
        if ready and not self.first:
            time.sleep(DEFER_SECONDS)
        return ready
