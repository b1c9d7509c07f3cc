"""``backprop worker``: Huey's consumer running the jobs of the queue (service.jobs.queue), with a
heartbeat and a reaper beside it."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from huey.api import Huey
from huey.consumer import Consumer

from service import tracing
from service.errors import BackpropError, QueueUnavailable, StorageFull
from service.jobs.queue import JobQueue
from service.jobs.reaper import Reaper
from service.jobs.runner import worker_id
from service.priority import lower_priority
from service.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 30  # a graceful stop waits this long for running jobs to reach a batch boundary


class GracefulConsumer(Consumer):
    """Huey's consumer with SIGTERM and SIGINT both graceful: running jobs stop at their next batch
    and go back on the queue (see ``run_job``); a second signal stops at once."""

    def __init__(self, huey: Huey, **options) -> None:
        super().__init__(huey, graceful_signal="TERM", shutdown_timeout=SHUTDOWN_SECONDS, **options)
        self._signal_actions[signal.SIGINT] = (False, True)  # Huey makes SIGINT abrupt otherwise


def _watch(reaper: Reaper, present: Callable[[], None], interval: float, stop: threading.Event) -> None:
    """Say this worker is alive, and look for lost jobs, every ``interval`` seconds."""
    while not stop.wait(interval):
        try:
            present()
            reaper.run_once()
        except QueueUnavailable as exc:
            log.warning("reaper: the job store is unreachable (%s); watching afresh when it is back", exc)
        except Exception:  # keep watching
            log.warning("reaper pass failed", exc_info=True)


def _wait_for_the_store(present: Callable[[], None], patience: float) -> None:
    """Start once the job store answers (Redis may come up after the workers, as in a compose
    stack), saying so meanwhile; give up after ``patience`` seconds (BACKPROP_OUTAGE_SECONDS)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            present()
            return
        except StorageFull as exc:
            log.warning("%s", exc.message)  # it can still train and save models
            return
        except QueueUnavailable as exc:
            if time.monotonic() >= deadline:
                raise QueueUnavailable(
                    f"{exc.message}; gave up after {patience:.0f} s (BACKPROP_OUTAGE_SECONDS)"
                ) from exc
            log.warning("waiting for the job store: %s", exc.message)
            time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))


def run_worker(settings: Settings) -> None:
    """Run a training worker until SIGTERM or SIGINT: a running job stops at its next batch and
    goes back on the queue without using an attempt."""
    lower_priority(settings.worker_nice)  # /predict latency first: training takes what is left
    queue = JobQueue(settings)
    queue.tracing = tracing.start("worker")
    queue.warn_if_not_persistent()
    consumer = GracefulConsumer(
        queue.huey,
        workers=settings.job_concurrency,
        worker_type="thread",
        periodic=False,
        initial_delay=0.1,
        max_delay=1.0,
    )
    queue.stopping = consumer.stop_flag
    reaper = Reaper(settings, queue.records, pending=queue.pending, requeue=queue.enqueue)
    me = worker_id()

    def present() -> None:
        # Seen by /readyz and by the jobs waiting for a worker; forgotten stale_seconds after the
        # last word, if this process dies without saying goodbye.
        queue.records.worker_alive(me, ttl=settings.stale_seconds)

    _wait_for_the_store(present, settings.outage_seconds)
    stop = threading.Event()
    interval = max(0.5, min(2.0, settings.heartbeat_seconds * 2))
    args = (reaper, present, interval, stop)
    threading.Thread(target=_watch, args=args, name="reaper", daemon=True).start()
    log.info(
        "worker %d: %d job(s) at a time, queue %s",
        os.getpid(),
        settings.job_concurrency,
        "redis" if settings.redis_url else settings.state_dir,
    )
    try:
        consumer.run()
    finally:
        stop.set()
        with contextlib.suppress(BackpropError):
            queue.records.worker_gone(me)
