"""A training job: what it is asked to do (``TrainRequest``: the hyperparameters, and where data and
result go) and its record (``JobRecord``: status, progress, history, outcome), one shape for the
job store, the runner and the API."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.errors import Conflict
from service.feedback.dataset import base_dataset
from service.store import ModelName
from service.training import TrainingConfig

# A catalogue dataset, or MNIST with people's corrections added (service.feedback.dataset).
DatasetName = Literal["mnist", "fashion-mnist", "mnist+feedback"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ACTIVE: tuple[JobStatus, ...] = ("queued", "running")
FINISHED: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")


class TrainRequest(TrainingConfig):
    """Body of ``POST /train``: every ``TrainingConfig`` hyperparameter, and the job's target."""

    dataset: DatasetName = Field("mnist", description="dataset under the server's BACKPROP_DATA_DIR")
    model: ModelName | None = Field(
        None, description="model to add a version to (default: the dataset's name, before any +)"
    )
    make_default: bool = Field(
        False, strict=True, description="make the new version the default (and the model the service's)"
    )

    @property
    def config(self) -> TrainingConfig:
        return TrainingConfig(**self.model_dump(include=set(TrainingConfig.model_fields)))

    @property
    def target_model(self) -> str:
        return self.model or base_dataset(self.dataset)


class JobProgress(BaseModel):
    epoch: int = 0
    epochs: int | None = None
    step: int = 0
    steps_per_epoch: int | None = None
    percent: float = 0.0


class JobResult(BaseModel):
    model: str
    version: int
    default: bool
    metrics: dict[str, Any]


class JobEvent(BaseModel):
    at: str
    event: Literal["interrupted", "requeued", "restored"]
    detail: str


class Job(BaseModel):
    """A training job as the API shows it."""

    id: str
    status: JobStatus
    request: dict[str, Any] = Field(description="the accepted POST /train body, defaults filled in")
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    progress: JobProgress
    history: list[dict[str, Any]] = Field([], description="per epoch: loss, accuracies, seconds")
    result: JobResult | None = Field(None, description="the model version the job produced")
    error: str | None = None
    cancel_requested: bool = False
    attempts: int = 0
    lost_attempts: list[dict[str, Any]] = Field([], description="runs whose worker was lost, with the reason")
    events: list[JobEvent] = Field(
        [], description="what else happened: interrupted by a worker's shutdown, requeued, restored"
    )
    worker: str | None = None
    note: str | None = Field(
        None, description="why a queued job is not running: no training worker is alive (not stored)"
    )
    curves: str | None = Field(
        None, description="where its learning curves are, as an SVG image (not stored)"
    )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class NotInState(Exception):
    """The job is not in the state a change expects (it moved on since it was read)."""

    def __init__(self, status: str) -> None:
        super().__init__(status)


class JobRecord(Job):
    """What the job store keeps of a job, and what the store, the runner, the reaper and the API
    pass around: all the API shows, and its last heartbeat; and every change of its state
    (``JobRecords.update`` applies them to stored records atomically).

        queued --claim--> running --finish--> succeeded | failed | cancelled
        queued --cancel--> cancelled          running --cancel--> (cancel_requested)
        running --release--> queued           its worker shut down: no attempt used
        running --lose--> queued | failed     its worker went silent: an attempt used
    """

    # A change that gives a field a value of the wrong type fails where it is made.
    model_config = ConfigDict(validate_assignment=True)

    heartbeat_ts: float | None = Field(None, description="when its worker last reported in (time.time())")
    trace_context: dict[str, str] = Field(
        {}, description="the W3C trace context of the POST /train that made it: the worker's span joins it"
    )

    def expect(self, status: JobStatus, worker: str | None = None) -> None:
        """Raise ``NotInState`` unless the job is ``status`` (on ``worker``, if given)."""
        if self.status != status or (worker is not None and self.worker != worker):
            raise NotInState(self.status)

    def add_event(self, event: Literal["interrupted", "requeued", "restored"], detail: str) -> None:
        """Something that happened to the job besides its normal course."""
        self.events.append(JobEvent(at=now_iso(), event=event, detail=detail))

    def claim(self, worker: str) -> None:
        """queued -> running on ``worker``, once: another delivery of the same job finds it running."""
        self.expect("queued")
        self.status, self.started_at, self.worker = "running", now_iso(), worker
        self.heartbeat_ts = time.time()
        self.attempts += 1

    def beat(self) -> None:
        if self.status == "running":
            self.heartbeat_ts = time.time()

    def finish(self, status: JobStatus, **fields: Any) -> None:
        """-> a final ``status``, with the result or the error in ``fields``."""
        self.status, self.finished_at, self.heartbeat_ts = status, now_iso(), None
        for name, value in fields.items():
            setattr(self, name, value)

    def cancel(self) -> None:
        """A queued job never starts; a running one stops at its next batch; a finished one: Conflict."""
        if self.status == "queued":
            self.status, self.finished_at = "cancelled", now_iso()
        elif self.status == "running":
            self.cancel_requested = True
        else:
            raise Conflict(f"job {self.id} already {self.status}")

    def release(self, worker: str, reason: str) -> None:
        """running -> queued, as if this run had never started (it uses no attempt); cancelled
        instead if a cancel had been asked for."""
        self.expect("running", worker)
        if self.cancel_requested:
            self.finish("cancelled")
            return
        self.add_event("interrupted", f"{reason}; back on the queue without using an attempt")
        self.status, self.worker, self.started_at, self.heartbeat_ts = "queued", None, None, None
        self.attempts -= 1
        self.history = []
        self.progress = self.progress.model_copy(update={"epoch": 0, "step": 0, "percent": 0.0})

    def lose(self, heartbeat: float, reason: str, *, retry: bool) -> None:
        """running -> queued (``retry``) or failed: its worker went silent after ``heartbeat``."""
        if self.status != "running" or self.heartbeat_ts != heartbeat:
            raise NotInState(self.status)
        self.lost_attempts.append({"worker": self.worker, "at": now_iso(), "reason": reason})
        self.heartbeat_ts = None
        self.progress = self.progress.model_copy(update={"percent": 0.0})
        if retry:
            self.status, self.worker, self.history = "queued", None, []
        else:
            self.finish("failed", error=f"{reason}; gave up after {self.attempts} attempts")
