"""Mini-batch training loop: shuffled epochs, optional shift augmentation, per-epoch history."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from service.errors import TrainingDiverged
from service.nn.network import MLP
from service.nn.optimizers import Optimizer


@dataclass(frozen=True)
class Progress:
    """Where training stands after a batch."""

    epoch: int  # 1-based
    epochs: int
    step: int  # 1-based within the epoch
    steps_per_epoch: int
    loss: float

    @property
    def percent(self) -> float:
        done = (self.epoch - 1) * self.steps_per_epoch + self.step
        return 100.0 * done / (self.epochs * self.steps_per_epoch)


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    loss: float
    train_accuracy: float
    val_accuracy: float | None
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


class Callback:
    """Hooks called by :func:`fit`. Raise ``TrainingCancelled`` from either to stop cleanly.

    ``fit`` raises ``TrainingDiverged`` itself when the loss or a parameter turns non-finite."""

    def on_batch_end(self, progress: Progress) -> None:
        pass

    def on_epoch_end(self, record: EpochRecord) -> None:
        pass


def random_shift(
    batch: np.ndarray, rng: np.random.Generator, *, max_shift: int, background: float
) -> np.ndarray:
    """Shift each square image in ``batch`` (N, side*side) by up to ``max_shift`` pixels.

    Returns a new (N, side*side) array; uncovered pixels take the ``background`` value.
    """
    n, size = batch.shape
    side = int(round(size**0.5))
    if side * side != size:
        raise ValueError(f"shift augmentation needs square images, got {size} inputs")
    images = batch.reshape(n, side, side)
    out = np.full((n, side, side), background, dtype=batch.dtype)
    offsets = rng.integers(-max_shift, max_shift + 1, size=(2, n))
    # One slice copy per distinct offset: far faster than a per-pixel gather.
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            chosen = np.flatnonzero((offsets[0] == dy) & (offsets[1] == dx))
            if chosen.size:
                out[chosen, max(dy, 0) : side + min(dy, 0), max(dx, 0) : side + min(dx, 0)] = images[
                    chosen, max(-dy, 0) : side + min(-dy, 0), max(-dx, 0) : side + min(-dx, 0)
                ]
    return out.reshape(n, size)


def fit(
    network: MLP,
    optimizer: Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    augment_shift: int = 0,
    schedule: Literal["constant", "cosine"] = "constant",
    callback: Callback | None = None,
) -> list[EpochRecord]:
    """Train ``network`` in place on normalized ``x`` (N, D) with integer labels ``y`` (N,).

    Each epoch visits every sample once in a fresh random order. The same ``rng`` state, data
    and settings give identical weights. ``schedule="cosine"`` anneals the optimizer's learning
    rate from its initial value to zero over all steps. Returns one record per epoch.
    """
    callback = callback or Callback()
    n = len(y)
    if n == 0:
        raise ValueError("no training samples")
    batch_size = min(batch_size, n)
    steps = -(-n // batch_size)
    batch_x = np.empty((batch_size, x.shape[1]), dtype=network.dtype)
    background = float(network.normalize(np.zeros((1, 1)))[0, 0])
    history: list[EpochRecord] = []
    base_lr = optimizer.lr
    total_steps = epochs * steps
    # Divergence is detected below and raised as TrainingDiverged, so NumPy's overflow warnings on
    # the way there say nothing more.
    with np.errstate(over="ignore", invalid="ignore"):
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            order = rng.permutation(n)
            loss_sum = 0.0
            correct = 0
            for step in range(1, steps + 1):
                idx = order[(step - 1) * batch_size : step * batch_size]
                xb = np.take(x, idx, axis=0, out=batch_x[: len(idx)])
                if augment_shift:
                    xb = random_shift(xb, rng, max_shift=augment_shift, background=background)
                yb = y[idx]
                if schedule == "cosine":
                    done = (epoch - 1) * steps + step - 1
                    optimizer.lr = base_lr * 0.5 * (1.0 + math.cos(math.pi * done / total_steps))
                loss, logits = network.gradient(xb, yb)
                if not math.isfinite(loss):
                    # Once non-finite, every later step only spreads NaN through the weights.
                    raise TrainingDiverged(epoch, step, f"the loss became {loss}")
                optimizer.step(network.params, network.grads)
                loss_sum += loss * len(idx)
                correct += int(np.count_nonzero(logits.argmax(axis=1) == yb))
                callback.on_batch_end(Progress(epoch, epochs, step, steps, loss))
            overflowed = network.non_finite_params()
            if overflowed:
                raise TrainingDiverged(epoch, steps, f"parameters {', '.join(overflowed)} overflowed")
            val_accuracy = network.accuracy(*validation) if validation and len(validation[1]) else None
            record = EpochRecord(
                epoch=epoch,
                loss=loss_sum / n,
                train_accuracy=correct / n,
                val_accuracy=val_accuracy,
                seconds=time.perf_counter() - started,
            )
            history.append(record)
            callback.on_epoch_end(record)
    return history
