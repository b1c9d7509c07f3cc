"""Running one training job in a worker, and noticing workers that died.

``run_job`` is the body of the Huey task. It claims the job (queued -> running, once), trains
with a callback that records progress and stops at a batch boundary when cancellation is asked
for, saves the model as a new immutable version, and records the outcome. A heartbeat thread
reports in every ``heartbeat_seconds``; ``reap`` (run by every worker) retries or fails running
jobs whose worker has been silent for ``stale_seconds``, e.g. after a SIGKILL.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from service.data import load_dataset
from service.errors import BackpropError, TrainingCancelled
from service.jobs.records import FINISHED, JobRecords, Record, now_iso
from service.jobs.schemas import TrainRequest
from service.nn import Callback, EpochRecord, Progress
from service.settings import Settings
from service.store import ModelStore
from service.training import train

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0  # seconds between progress writes within an epoch


class _NotRunnable(Exception):
    """The job is not queued any more (cancelled, or claimed by another delivery)."""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _Heartbeat(threading.Thread):
    """Reports the job alive, and relays a cancel request to the training loop."""

    def __init__(self, records: JobRecords, job_id: str, interval: float) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.records, self.job_id, self.interval = records, job_id, interval
        self.cancel = threading.Event()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                record = self.records.update(self.job_id, _beat)
            except Exception:  # noqa: BLE001 - a missed beat is retried next interval
                log.warning("heartbeat of job %s failed", self.job_id, exc_info=True)
                continue
            if record["cancel_requested"]:
                self.cancel.set()


def _beat(record: Record) -> None:
    if record["status"] == "running":
        record["heartbeat_ts"] = time.time()


class _JobCallback(Callback):
    def __init__(self, records: JobRecords, job_id: str, cancel: threading.Event) -> None:
        self.records, self.job_id, self.cancel = records, job_id, cancel
        self._last_write = 0.0

    def _write_progress(self, progress: Progress, epoch_record: EpochRecord | None = None) -> None:
        def change(record: Record) -> None:
            record["progress"] = {
                "epoch": progress.epoch,
                "epochs": progress.epochs,
                "step": progress.step,
                "steps_per_epoch": progress.steps_per_epoch,
                "percent": round(progress.percent, 2),
            }
            if epoch_record is not None:
                record["history"].append(epoch_record.to_dict())

        self.records.update(self.job_id, change)
        self._last_write = time.monotonic()

    def on_batch_end(self, progress: Progress) -> None:
        self._progress = progress
        if self.cancel.is_set():
            raise TrainingCancelled("cancelled on request")
        if time.monotonic() - self._last_write >= PROGRESS_INTERVAL:
            self._write_progress(progress)

    def on_epoch_end(self, record: EpochRecord) -> None:
        self._write_progress(self._progress, record)


def _finish(status: str, **fields) -> Callable[[Record], None]:
    def change(record: Record) -> None:
        record.update(status=status, finished_at=now_iso(), heartbeat_ts=None, **fields)

    return change


def run_job(settings: Settings, records: JobRecords, job_id: str) -> None:
    """Train the job ``job_id`` and record what came of it. Never raises for job failures."""

    me = worker_id()

    def claim(record: Record) -> None:
        if record["status"] != "queued":
            raise _NotRunnable(record["status"])
        record.update(status="running", started_at=now_iso(), worker=me, heartbeat_ts=time.time())
        record["attempts"] += 1

    def still_mine(record: Record) -> None:
        # A worker stalled past stale_seconds may have been declared lost and its job requeued:
        # then the new run owns the job, and this one must not save a second model.
        if record["status"] != "running" or record["worker"] != me:
            raise _NotRunnable(f"{record['status']} (taken over from {me})")

    try:
        record = records.update(job_id, claim)
    except _NotRunnable as exc:
        log.info("job %s not run: it is %s", job_id, exc)
        return
    heartbeat = _Heartbeat(records, job_id, settings.heartbeat_seconds)
    heartbeat.start()
    try:
        request = TrainRequest.model_validate(record["request"])
        log.info("job %s: training %s on %s", job_id, request.target_model, request.dataset)
        dataset = load_dataset(request.dataset, settings.data_dir, mirrors=settings.dataset_mirrors or None)
        result = train(request.config, dataset, _JobCallback(records, job_id, heartbeat.cancel))
        records.update(job_id, still_mine)
        store = ModelStore(settings.model_store)
        meta = store.save(
            request.target_model,
            result.network,
            {
                "dataset": {"name": dataset.info.name, "source": str(dataset.source)},
                "training": request.config.model_dump(mode="json"),
                "metrics": result.metrics,
                "history": [r.to_dict() for r in result.history],
                "train_seconds": result.seconds,
                "job": job_id,
            },
        )
        if request.make_default:
            store.set_default(request.target_model, meta["version"])
        outcome = {
            "model": meta["name"],
            "version": meta["version"],
            "metrics": result.metrics,
            "default": request.make_default,
        }
        records.update(job_id, _finish("succeeded", result=outcome))
        log.info("job %s: saved %s v%d", job_id, meta["name"], meta["version"])
    except _NotRunnable as exc:
        log.warning("job %s: finished training but saved nothing: the job is now %s", job_id, exc)
    except TrainingCancelled:
        records.update(job_id, _finish("cancelled"))
        log.info("job %s: cancelled", job_id)
    except BackpropError as exc:
        records.update(job_id, _finish("failed", error=exc.message))
        log.warning("job %s failed: %s", job_id, exc.message)
    except Exception as exc:  # noqa: BLE001 - any failure must end in a readable record
        log.exception("job %s failed", job_id)
        records.update(job_id, _finish("failed", error=f"{type(exc).__name__}: {exc}"))
    finally:
        heartbeat.stopped.set()


def reap(settings: Settings, records: JobRecords, requeue: Callable[[str], None]) -> list[str]:
    """Retry (up to ``job_max_attempts`` runs) or fail running jobs whose worker went silent."""
    reaped = []
    deadline = time.time() - settings.stale_seconds
    for record in records.running():
        if (record["heartbeat_ts"] or 0) >= deadline:
            continue
        retry = record["attempts"] < settings.job_max_attempts

        def change(current: Record, retry: bool = retry) -> None:
            if current["status"] != "running" or (current["heartbeat_ts"] or 0) >= deadline:
                raise _NotRunnable(current["status"])
            reason = (
                f"worker {current['worker']} stopped reporting in (no heartbeat for "
                f"{settings.stale_seconds:g} s); it was probably killed"
            )
            current["lost_attempts"].append({"worker": current["worker"], "at": now_iso(), "reason": reason})
            current.update(heartbeat_ts=None, progress={**current["progress"], "percent": 0.0})
            if retry:
                current.update(status="queued", worker=None, history=[])
            else:
                current.update(
                    status="failed",
                    finished_at=now_iso(),
                    error=f"{reason}; gave up after {current['attempts']} attempts",
                )

        try:
            records.update(record["id"], change)
        except _NotRunnable:
            continue
        if retry:
            requeue(record["id"])
        reaped.append(record["id"])
        log.warning(
            "job %s: worker %s lost; %s", record["id"], record["worker"], "retrying" if retry else "failed"
        )
    return reaped


__all__ = ["FINISHED", "reap", "run_job", "worker_id"]
