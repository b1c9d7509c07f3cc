"""Mini-batch training loop: shuffled, optionally augmented epochs, prepared ahead; per-epoch history."""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from threadpoolctl import threadpool_limits

from service.errors import TrainingDiverged
from service.nn.augment import Augmentation
from service.nn.loader import Prefetcher, batches
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


def _blas_leaving_a_core() -> threadpool_limits:
    # Idle OpenBLAS threads spin, and on two cores they took the loader's core: warped epochs ran
    # 1.4x slower with the loader than without; with one core left to it, 1.2x faster. Warped
    # epochs keep that limit with or without the loader, so both give the same weights.
    return threadpool_limits(limits=max(1, (os.cpu_count() or 1) - 1), user_api="blas")


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
    augmentation: Augmentation | None = None,
    prefetch: int = 2,
    schedule: Literal["constant", "cosine"] = "constant",
    callback: Callback | None = None,
) -> list[EpochRecord]:
    """Train ``network`` in place on normalized ``x`` (N, D) with integer labels ``y`` (N,).

    Each epoch visits every sample once in a fresh random order. The same ``rng`` state, data
    and settings give identical weights, whether or not batches are prepared ahead: ``prefetch``
    batches (0: none) in a background thread. ``schedule="cosine"`` anneals the optimizer's
    learning rate from its initial value to zero over all steps. An optimizer that averages the
    weights has its average measured each epoch and left in ``network`` at the end. Returns one
    record per epoch.
    """
    callback = callback or Callback()
    n = len(y)
    if n == 0:
        raise ValueError("no training samples")
    batch_size = min(batch_size, n)
    steps = -(-n // batch_size)
    background = float(network.normalize(np.zeros((1, 1)))[0, 0])
    history: list[EpochRecord] = []
    base_lr = optimizer.lr
    total_steps = epochs * steps
    # Divergence is detected below and raised as TrainingDiverged, so NumPy's overflow warnings on
    # the way there say nothing more.
    source = batches(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        rng=rng,
        augmentation=augmentation,
        background=background,
        dtype=network.dtype,
    )
    with (
        np.errstate(over="ignore", invalid="ignore"),
        _blas_leaving_a_core()
        if prefetch and augmentation and augmentation.warps
        else contextlib.nullcontext(),
        Prefetcher(source, prefetch) if prefetch else contextlib.nullcontext(source) as loader,
    ):
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            loss_sum = 0.0
            correct = 0
            for step in range(1, steps + 1):
                xb, yb = next(loader)
                if schedule == "cosine":
                    done = (epoch - 1) * steps + step - 1
                    optimizer.lr = base_lr * 0.5 * (1.0 + math.cos(math.pi * done / total_steps))
                loss, logits = network.gradient(xb, yb)
                if not math.isfinite(loss):
                    # Once non-finite, every later step only spreads NaN through the weights.
                    raise TrainingDiverged(epoch, step, f"the loss became {loss}")
                optimizer.step(network.params, network.grads)
                loss_sum += loss * len(yb)
                correct += int(np.count_nonzero(logits.argmax(axis=1) == yb))
                callback.on_batch_end(Progress(epoch, epochs, step, steps, loss))
            overflowed = network.non_finite_params()
            if overflowed:
                raise TrainingDiverged(epoch, steps, f"parameters {', '.join(overflowed)} overflowed")
            with optimizer.averaged_weights(network.params):  # what training will leave, measured
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
    optimizer.keep_averages(network.params)
    return history
