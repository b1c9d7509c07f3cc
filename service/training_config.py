"""``TrainingConfig``: the one definition of a training run's hyperparameters. The CLI fills it
from flags, the HTTP API validates requests with it, the dashboard's form reads its bounds."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.json_types import json_int
from service.nn.augment import Augmentation


class TrainingConfig(BaseModel):
    """Hyperparameters of one training run. Numbers and booleans are strict: ``"yes"`` is no bool and
    ``true`` no epoch count; integers pass where a float is asked for, and integral numbers (``30.0``)
    where an integer is, as in JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden: tuple[json_int(ge=1, le=4096), ...] = Field(
        (512, 256), min_length=1, max_length=8, description="hidden layer sizes, input to output"
    )
    epochs: json_int(ge=1, le=500) = 30
    members: json_int(ge=1, le=4) = Field(
        1,
        description="networks trained one after another, each with streams of its own and one split, "
        "saved as one whose logits are their mean (hidden sizes times members, block-diagonal)",
    )
    batch_size: json_int(ge=1, le=8192) = 256
    optimizer: Literal["sgd", "momentum", "adam"] = "adam"
    learning_rate: float = Field(2e-3, gt=0, le=10, strict=True)
    momentum: float = Field(0.9, ge=0, lt=1, description="for the momentum optimizer", strict=True)
    weight_decay: float = Field(0.0, ge=0, le=1, description="decoupled, on weights only", strict=True)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    weight_init: Literal["he", "gaussian"] = "he"
    init_std: float = Field(0.01, gt=0, le=1, description="std of the gaussian init", strict=True)
    seed: json_int(ge=0, lt=2**32) = 0
    validation_split: float = Field(0.1, ge=0, le=0.5, strict=True)
    feedback_weight: json_int(ge=1, le=100) = Field(
        10, description="with a +feedback dataset: times each correction is trained on per epoch"
    )
    fine_tune: bool = Field(
        False,
        strict=True,
        description="start from the target model's default version (its weights, layer sizes and input "
        "normalization; hidden and members are ignored) instead of random weights",
    )
    dropout: float = Field(
        0.0, ge=0, le=0.8, strict=True, description="inverted dropout after each hidden layer, in training"
    )
    label_smoothing: float = Field(
        0.0,
        ge=0,
        le=0.5,
        strict=True,
        description="of the loss's targets: 1 - e on the label, e spread over all",
    )
    weight_average: float = Field(
        0.0,
        ge=0,
        le=0.9999,
        strict=True,
        description="decay of an exponential moving average of the weights, measured and saved instead "
        "of the last weights (0: off)",
    )
    augment: bool = Field(
        True, description="distort training images as the augment_* settings say", strict=True
    )
    augment_shift: json_int(ge=0, le=4) = Field(1, description="shift by up to this many whole pixels")
    augment_rotate: float = Field(0.0, ge=0, le=45, strict=True, description="rotate by up to these degrees")
    augment_scale: float = Field(
        0.0,
        ge=0,
        le=0.5,
        strict=True,
        description="zoom by a factor in [1 - augment_scale, 1 + augment_scale]",
    )
    augment_shear: float = Field(0.0, ge=0, le=45, strict=True, description="shear by up to these degrees")
    augment_elastic_alpha: float = Field(
        0.0, ge=0, le=64, strict=True, description="elastic distortion's scale in pixels (Simard 2003: 34)"
    )
    augment_elastic_sigma: float = Field(
        4.0,
        ge=1,
        le=16,
        strict=True,
        description="elastic distortion's smoothness in pixels (Simard 2003: 4)",
    )

    @property
    def augmentation(self) -> Augmentation | None:
        """The distortions ``fit`` applies, or None when augmentation is off."""
        if not self.augment:
            return None
        return Augmentation(
            shift=self.augment_shift,
            rotate=self.augment_rotate,
            scale=self.augment_scale,
            shear=self.augment_shear,
            elastic_alpha=self.augment_elastic_alpha,
            elastic_sigma=self.augment_elastic_sigma,
        )

    def multiply_adds(self, input_size: int = 784, num_classes: int = 10) -> int:
        """Multiply-adds of one image through the network, times epochs and members: the job's cost
        per image."""
        sizes = [input_size, *self.hidden, num_classes]
        return self.members * self.epochs * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
