"""What a training job is asked to do: the hyperparameters plus where data and result go."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from service.store import ModelName
from service.training import TrainingConfig

DatasetName = Literal["mnist", "fashion-mnist"]


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
