"""The job queue: Huey (SQLite by default, Redis with ``BACKPROP_REDIS_URL``) plus job records.

``JobQueue`` is what the API uses (submit, cancel, read); ``service.jobs.worker.run_worker`` is
``backprop worker``. Both build the same Huey instance from the settings and register the same task
on it, so a job submitted anywhere runs on any worker that shares the queue. Storage is opened on
first use, so a full or missing state folder costs the job endpoints only, never the app's start;
Huey itself is imported then too (with Redis' client, a tenth of a second that a serving process
that never queues a job does not pay).
"""

from __future__ import annotations

import logging
import threading
import uuid
from functools import cached_property
from typing import TYPE_CHECKING

from service.data import DATASETS, locate
from service.errors import (
    BackpropError,
    Conflict,
    InvalidInput,
    QueueUnavailable,
    StorageFull,
    is_out_of_storage,
)
from service.feedback.dataset import base_dataset
from service.feedback.store import FeedbackStore
from service.jobs import transitions
from service.jobs.records import JobRecords, make_records, new_record
from service.jobs.runner import run_job
from service.jobs.schemas import JobRecord, TrainRequest
from service.settings import Settings
from service.store import ModelStore
from service.tracing import Tracing

if TYPE_CHECKING:
    from huey.api import Huey

log = logging.getLogger(__name__)

TASK_NAME = "backprop.train"


def _state_errors(what: str, exc: Exception) -> Exception:
    if isinstance(exc, StorageFull | QueueUnavailable):
        return exc
    if is_out_of_storage(exc):
        return StorageFull(f"{what}: the state folder (BACKPROP_STATE_DIR) is full or read-only: {exc}")
    return QueueUnavailable(f"{what}: {exc}")


class JobQueue:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = threading.Event()  # set by the worker's graceful shutdown
        self.tracing = Tracing()  # a worker's, when it traces

    @cached_property
    def records(self) -> JobRecords:
        try:
            return make_records(self.settings)
        except Exception as exc:  # a full, read-only or missing state folder alike
            raise _state_errors("the job records cannot be opened", exc) from exc

    @cached_property
    def huey(self) -> Huey:
        from huey import RedisHuey, SqliteHuey

        try:
            if self.settings.redis_url:
                huey: Huey = RedisHuey("backprop", url=self.settings.redis_url, results=False)
            else:
                self.settings.state_dir.mkdir(parents=True, exist_ok=True)
                huey = SqliteHuey(
                    "backprop", filename=str(self.settings.state_dir / "queue.sqlite3"), results=False
                )
        except Exception as exc:
            raise _state_errors("the job queue cannot be opened", exc) from exc
        self._task = huey.task(name=TASK_NAME)(self._run)
        return huey

    def _run(self, job_id: str) -> None:
        run_job(
            self.settings,
            self.records,
            job_id,
            stopping=self.stopping,
            requeue=self.enqueue,
            tracing=self.tracing,
        )

    def enqueue(self, job_id: str) -> None:
        try:
            self.huey  # noqa: B018 - opens the queue and registers self._task
            self._task(job_id)
        except Exception as exc:  # any broker failure is the same to the caller
            raise _state_errors("the job queue is unavailable", exc) from exc

    def pending(self) -> set[str]:
        """Ids of the jobs waiting in the queue itself."""
        try:
            return {task.args[0] for task in self.huey.pending()}
        except Exception as exc:
            raise _state_errors("the job queue is unavailable", exc) from exc

    def check_acceptable(self, request: TrainRequest) -> None:
        """Refuse, at the request, a job that could not succeed or would cost too much."""
        cost = request.config.multiply_adds()
        if cost > self.settings.max_job_cost:
            raise InvalidInput.at(
                ["body"],
                "job cost over BACKPROP_MAX_JOB_COST",
                "job_cost",
                message=f"this job needs {cost / 1e9:.3g} G multiply-adds per training image (the "
                f"network's multiply-adds times epochs); the server allows "
                f"{self.settings.max_job_cost / 1e9:.3g} G (BACKPROP_MAX_JOB_COST): use fewer or smaller "
                "hidden layers, or fewer epochs",
            )
        if (
            not self.settings.allow_download
            and locate(DATASETS[base_dataset(request.dataset)], self.settings.data_dir) is None
        ):
            raise InvalidInput.at(
                ["dataset"],
                "dataset not found on the server",
                "dataset",
                message=f"dataset {request.dataset!r} is not on this server: set BACKPROP_DATA_DIR (on the "
                "server and its workers) to a folder holding its IDX files, or BACKPROP_ALLOW_DOWNLOAD=1 "
                "to let workers download it",
            )
        if (
            request.dataset.endswith("+feedback")
            and not FeedbackStore.from_settings(self.settings).summary()["corrections"]
        ):
            raise Conflict("there are no corrections to train on yet (POST /feedback adds them)")
        if request.fine_tune and not ModelStore(self.settings.model_store).versions(request.target_model):
            raise Conflict(f"{request.target_model} has no default version to fine-tune: train one first")

    def submit(self, request: TrainRequest, trace_context: dict[str, str] | None = None) -> JobRecord:
        """Record a queued job (with the trace it belongs to) and put it on the queue."""
        self.check_acceptable(request)
        job_id = uuid.uuid4().hex
        record = new_record(job_id, request.model_dump(mode="json"), trace_context)
        self.records.create(record, max_queued=self.settings.max_queued_jobs)
        try:
            self.enqueue(job_id)
        except QueueUnavailable as exc:
            reason = exc.message
            self.records.update(job_id, transitions.finish("failed", error=reason))
            raise
        return record

    def workers_alive(self) -> int | None:
        """How many training workers are alive, or None when the job store cannot say."""
        try:
            return len(self.records.workers_alive())
        except BackpropError:
            return None

    def get(self, job_id: str) -> JobRecord:
        return self.records.get(job_id)

    def page(self, limit: int, offset: int) -> tuple[list[JobRecord], int]:
        return self.records.page(limit, offset)

    def cancel(self, job_id: str) -> JobRecord:
        """A queued job never starts; a running one stops at its next batch; a finished one: 409."""
        return self.records.update(job_id, transitions.cancel)

    def warn_if_not_persistent(self) -> None:
        try:
            problem = self.records.persistence_problem()
        except Exception:  # noqa: BLE001 - a warning must never stop a start
            return
        if problem:
            log.warning("%s", problem)
