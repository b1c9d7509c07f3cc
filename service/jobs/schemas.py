"""A training job: what it is asked to do (``TrainRequest``: the hyperparameters, and where data and
result go) and its record (``JobRecord``: status, progress, history, outcome), one shape for the
job store, the runner and the API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from service.store import ModelName
from service.training import TrainingConfig

DatasetName = Literal["mnist", "fashion-mnist"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ACTIVE: tuple[JobStatus, ...] = ("queued", "running")
FINISHED: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")


class TrainRequest(TrainingConfig):
    """Body of ``POST /train``: every ``TrainingConfig`` hyperparameter, and the job's target."""

    dataset: DatasetName = Field("mnist", description="dataset under the server's BACKPROP_DATA_DIR")
    model: ModelName | None = Field(
        None, description="model to add a version to (default: the dataset's name)"
    )
    make_default: bool = Field(
        False, strict=True, description="make the new version the default (and the model the service's)"
    )

    @property
    def config(self) -> TrainingConfig:
        return TrainingConfig(**self.model_dump(include=set(TrainingConfig.model_fields)))

    @property
    def target_model(self) -> str:
        return self.model or self.dataset


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


class JobRecord(Job):
    """What the job store keeps of a job: all the API shows, and its last heartbeat."""

    heartbeat_ts: float | None = Field(None, description="when its worker last reported in (time.time())")
