"""Running one training job in a worker.

``run_job`` is the body of the Huey task. It claims the job (queued -> running, once), trains
with a callback that records progress and stops at a batch boundary when cancellation is asked
for or the worker is shutting down, saves the model as a new immutable version, and records the
outcome. A heartbeat thread reports in every ``heartbeat_seconds`` (``service.jobs.reaper`` acts on
silence).

The job's record lives in a store that may be briefly unreachable (a Redis restart) or may even
come back empty (a Redis without persistence): progress writes are skipped while it is away, the
final writes wait for it (up to ``outage_seconds``), and a record the store lost is put back from
this worker's copy.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from service.errors import (
    BackpropError,
    JobNotFound,
    QueueUnavailable,
    TrainingCancelled,
    TrainingInterrupted,
)
from service.feedback.dataset import load_training_data
from service.feedback.store import FeedbackStore
from service.jobs import transitions
from service.jobs.records import Change, JobRecords
from service.jobs.schemas import JobProgress, JobRecord, JobResult, TrainRequest
from service.nn import Callback, EpochRecord, Progress
from service.settings import Settings
from service.store import ModelStore
from service.tracing import Tracing
from service.training import train_and_save

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0  # seconds between progress writes within an epoch


@functools.cache
def _process_token(pid: int) -> str:
    return secrets.token_hex(3)


def worker_id() -> str:
    """host:pid:token. The token tells apart processes whose host name and pid are the same:
    containers that share the host's network (and so its name) and all run as pid 1."""
    return f"{socket.gethostname()}:{os.getpid()}:{_process_token(os.getpid())}"


class TrackedJob:
    """This worker's handle on the record of the job it runs.

    ``write`` is for progress: it gives up quietly while the store is unreachable. ``write_patiently``
    is for outcomes: it waits the outage out, up to ``patience`` seconds. Both put the record back
    from this worker's last copy when the store has lost it.
    """

    def __init__(self, records: JobRecords, record: JobRecord, patience: float) -> None:
        self.records, self.job_id, self.patience = records, record.id, patience
        self.last = record
        self.unreachable = False  # one warning per outage, not one per write
        self._lock = threading.Lock()

    def _update(self, change: Change) -> JobRecord:
        with self._lock:
            try:
                record = self.records.update(self.job_id, change)
            except JobNotFound:
                restored = self.last.model_copy(deep=True)
                transitions.restored("the worker running the job")(restored)
                log.error("job %s: its record vanished from the job store; restoring it", self.job_id)
                self.records.restore(restored)
                record = self.records.update(self.job_id, change)
            if self.unreachable:
                self.unreachable = False
                log.info("job %s: the job store is reachable again", self.job_id)
            self.last = record
            return record

    def write(self, change: Change) -> JobRecord | None:
        try:
            return self._update(change)
        except QueueUnavailable as exc:
            if not self.unreachable:
                self.unreachable = True
                log.warning(
                    "job %s: the job store is unreachable (%s); progress waits for it", self.job_id, exc
                )
            return None

    def write_patiently(self, change: Change) -> JobRecord:
        deadline = time.monotonic() + self.patience
        delay = 0.2
        while True:
            try:
                return self._update(change)
            except QueueUnavailable:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("job %s: the job store is unreachable; retrying in %.1f s", self.job_id, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)


class _Heartbeat(threading.Thread):
    """Reports the job alive, and relays a cancel request to the training loop."""

    def __init__(self, job: TrackedJob, interval: float) -> None:
        super().__init__(name=f"heartbeat-{job.job_id}", daemon=True)
        self.job, self.interval = job, interval
        self.cancel = threading.Event()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                record = self.job.write(transitions.beat)
            except Exception:  # a missed beat is retried next interval
                log.warning("heartbeat of job %s failed", self.job.job_id, exc_info=True)
                continue
            if record is not None and record.cancel_requested:
                self.cancel.set()


class _JobCallback(Callback):
    def __init__(
        self, job: TrackedJob, cancel: threading.Event, stopping: threading.Event, span: Any = None
    ) -> None:
        self.job, self.cancel, self.stopping, self.span = job, cancel, stopping, span
        self.history: list[dict] = []
        self.progress: Progress | None = None
        self._last_write = 0.0

    def record_progress(self, record: JobRecord) -> None:
        """Put where training stands, and the whole history, into ``record``: whatever writes were
        missed while the job store was away are made good by the next one."""
        progress = self.progress
        record.progress = JobProgress(
            epoch=progress.epoch,
            epochs=progress.epochs,
            step=progress.step,
            steps_per_epoch=progress.steps_per_epoch,
            percent=round(progress.percent, 2),
        )
        record.history = list(self.history)

    def _write_progress(self) -> None:
        self.job.write(self.record_progress)
        self._last_write = time.monotonic()

    def on_batch_end(self, progress: Progress) -> None:
        self.progress = progress
        if self.cancel.is_set():
            raise TrainingCancelled("cancelled on request")
        if self.stopping.is_set():
            raise TrainingInterrupted(f"worker shutting down at epoch {progress.epoch}, step {progress.step}")
        if time.monotonic() - self._last_write >= PROGRESS_INTERVAL:
            self._write_progress()

    def on_epoch_end(self, record: EpochRecord) -> None:
        if self.span is not None:  # one event per epoch in the job's span
            figures = {k: v for k, v in record.to_dict().items() if isinstance(v, int | float)}
            self.span.add_event("epoch", figures)
        self.history.append(record.to_dict())
        self._write_progress()


def run_job(
    settings: Settings,
    records: JobRecords,
    job_id: str,
    *,
    stopping: threading.Event | None = None,
    requeue: Callable[[str], None] | None = None,
    tracing: Tracing | None = None,
) -> None:
    """Train the job ``job_id`` and record what came of it. Never raises for job failures.

    ``stopping`` set (the worker is shutting down) stops training at the next batch and puts the
    job back on the queue through ``requeue``."""
    me = worker_id()
    stopping = stopping or threading.Event()
    if stopping.is_set():
        # Delivered while this worker shuts down: the message is consumed, so send it round again.
        if requeue is not None:
            requeue(job_id)
        return
    try:
        record = records.update(job_id, transitions.claim(me))
    except (transitions.NotInState, JobNotFound) as exc:
        log.info("job %s not run: it is %s", job_id, exc)
        return
    job = TrackedJob(records, record, settings.outage_seconds)
    heartbeat = _Heartbeat(job, settings.heartbeat_seconds)
    heartbeat.start()
    # The POST /train's trace goes on here: the time between is the job's wait in the queue.
    joined = (tracing or Tracing()).continued(
        record.trace_context, "training job", **{"backprop.job": job_id}
    )
    with joined as span:
        _train(settings, job, record, me, heartbeat, stopping, requeue, span)


def _train(
    settings: Settings,
    job: TrackedJob,
    record: JobRecord,
    me: str,
    heartbeat: _Heartbeat,
    stopping: threading.Event,
    requeue: Callable[[str], None] | None,
    span: Any,
) -> None:
    def claim_result(record: JobRecord) -> None:
        # A worker stalled past stale_seconds may have been declared lost and its job requeued:
        # then the new run owns the job, and this one must not save a second model.
        transitions.still_running_on(me)(record)
        # Training may have ended while the store was away: the last progress writes land here.
        callback.record_progress(record)

    job_id = record.id
    try:
        request = TrainRequest.model_validate(record.request)
        log.info("job %s: training %s on %s", job_id, request.target_model, request.dataset)
        dataset = load_training_data(
            request.dataset,
            settings.data_dir,
            FeedbackStore.from_settings(settings),
            download=settings.allow_download,
            mirrors=settings.dataset_mirrors or None,
        )
        callback = _JobCallback(job, heartbeat.cancel, stopping, span)
        meta, result = train_and_save(
            request.config,
            dataset,
            ModelStore(settings.model_store),
            request.target_model,
            callback=callback,
            make_default=request.make_default,
            job=job_id,
            before_save=lambda: job.write_patiently(claim_result),
        )
        outcome = JobResult(
            model=meta["name"], version=meta["version"], metrics=result.metrics, default=request.make_default
        )
        job.write_patiently(transitions.finish("succeeded", result=outcome))
        if span is not None:
            span.set_attributes({"backprop.model": meta["name"], "backprop.version": meta["version"]})
        log.info("job %s: saved %s v%d", job_id, meta["name"], meta["version"])
    except transitions.NotInState as exc:
        log.warning("job %s: finished training but saved nothing: the job is now %s", job_id, exc)
    except TrainingInterrupted as exc:
        _put_back(job, me, exc.message, requeue)
    except TrainingCancelled:
        job.write_patiently(transitions.finish("cancelled"))
        log.info("job %s: cancelled", job_id)
    except BackpropError as exc:
        job.write_patiently(transitions.finish("failed", error=exc.message))
        log.warning("job %s failed: %s", job_id, exc.message)
    except Exception as exc:  # any failure must end in a readable record
        log.exception("job %s failed", job_id)
        job.write_patiently(transitions.finish("failed", error=f"{type(exc).__name__}: {exc}"))
    finally:
        heartbeat.stopped.set()


def _put_back(job: TrackedJob, me: str, reason: str, requeue: Callable[[str], None] | None) -> None:
    try:
        record = job.write_patiently(transitions.release(me, reason))
    except transitions.NotInState:
        return
    if record.status != "queued":
        return  # a cancel had been asked for: the job ended instead
    log.info("job %s: %s; back on the queue", job.job_id, reason)
    if requeue is not None:
        try:
            requeue(job.job_id)
        except QueueUnavailable:
            # The record says queued; the reaper puts back on the queue what the queue lacks.
            log.warning("job %s: could not requeue now; the reaper will", job.job_id)


__all__ = ["TrackedJob", "run_job", "worker_id"]
