"""The job queue: Huey (SQLite by default, Redis with ``BACKPROP_REDIS_URL``) plus job records.

``JobQueue`` is what the API uses (submit, cancel, read); ``run_worker`` is ``backprop worker``.
Both build the same Huey instance from the settings and register the same task on it, so a job
submitted anywhere runs on any worker that shares the queue.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from typing import Any

from huey import RedisHuey, SqliteHuey
from huey.api import Huey

from service.errors import Conflict, QueueUnavailable
from service.jobs.records import (
    FINISHED,
    JobRecords,
    Record,
    RedisJobRecords,
    SqliteJobRecords,
    new_record,
    now_iso,
)
from service.jobs.runner import reap, run_job
from service.jobs.schemas import TrainRequest
from service.settings import Settings

log = logging.getLogger(__name__)

TASK_NAME = "backprop.train"


def make_records(settings: Settings) -> JobRecords:
    if settings.redis_url:
        return RedisJobRecords(settings.redis_url)
    return SqliteJobRecords(settings.state_dir / "jobs.sqlite3")


class JobQueue:
    def __init__(self, settings: Settings, records: JobRecords | None = None) -> None:
        self.settings = settings
        self.records = records or make_records(settings)
        if settings.redis_url:
            self.huey: Huey = RedisHuey("backprop", url=settings.redis_url, results=False)
        else:
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            self.huey = SqliteHuey(
                "backprop", filename=str(settings.state_dir / "queue.sqlite3"), results=False
            )
        self._task = self.huey.task(name=TASK_NAME)(self._run)

    def _run(self, job_id: str) -> None:
        run_job(self.settings, self.records, job_id)

    def _enqueue(self, job_id: str) -> None:
        try:
            self._task(job_id)
        except Exception as exc:  # noqa: BLE001 - any broker failure is the same to the caller
            raise QueueUnavailable(f"the job queue is unavailable: {exc}") from exc

    def submit(self, request: TrainRequest) -> Record:
        """Record a queued job and put it on the queue."""
        job_id = uuid.uuid4().hex
        record = new_record(job_id, request.model_dump(mode="json"))
        self.records.create(record)
        try:
            self._enqueue(job_id)
        except QueueUnavailable as exc:
            reason = exc.message
            self.records.update(
                job_id, lambda r: r.update(status="failed", finished_at=now_iso(), error=reason)
            )
            raise
        return record

    def get(self, job_id: str) -> Record:
        return self.records.get(job_id)

    def page(self, limit: int, offset: int) -> tuple[list[Record], int]:
        return self.records.page(limit, offset)

    def cancel(self, job_id: str) -> Record:
        """A queued job never starts; a running one stops at its next batch; a finished one: 409."""

        def change(record: Record) -> None:
            if record["status"] == "queued":
                record.update(status="cancelled", finished_at=now_iso())
            elif record["status"] == "running":
                record["cancel_requested"] = True
            elif record["status"] in FINISHED:
                raise Conflict(f"job {job_id} already {record['status']}")

        return self.records.update(job_id, change)

    def reap(self) -> list[str]:
        return reap(self.settings, self.records, self._enqueue)


def _reaper(queue: JobQueue, stop: threading.Event) -> None:
    while not stop.wait(max(1.0, queue.settings.heartbeat_seconds * 2)):
        try:
            queue.reap()
        except Exception:  # noqa: BLE001 - keep watching
            log.warning("reaper pass failed", exc_info=True)


def run_worker(settings: Settings, **consumer_options: Any) -> None:
    """Run a training worker until SIGINT (finishes the running job) or SIGTERM (stops now)."""
    if settings.worker_nice:
        os.nice(settings.worker_nice)  # /predict latency first: training takes what is left
    queue = JobQueue(settings)
    stop = threading.Event()
    threading.Thread(target=_reaper, args=(queue, stop), name="reaper", daemon=True).start()
    queue.reap()  # jobs of a worker that died while nobody was watching
    options = {
        "workers": settings.job_concurrency,
        "worker_type": "thread",
        "periodic": False,
        "initial_delay": 0.1,
        "max_delay": 1.0,
        **consumer_options,
    }
    log.info(
        "worker %d: %d job(s) at a time, queue %s",
        os.getpid(),
        options["workers"],
        settings.redis_url or settings.state_dir,
    )
    try:
        queue.huey.create_consumer(**options).run()
    finally:
        stop.set()
