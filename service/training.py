"""From hyperparameters and a dataset to a trained network with its metrics.

``TrainingConfig`` (``service.training_config``) is the one definition of the hyperparameters;
``train_and_save`` is the one way from them to a stored
version, for the CLI and for jobs alike. Defaults reach >= 89.5% on Fashion-MNIST's test set in
well under a minute on two cores, and >= 96% held-out accuracy on the 5,000-digit MNIST subset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from service import drift
from service.data import Dataset, stratified_split
from service.errors import Conflict, DatasetError
from service.evaluation import honest_metrics, same_data_or_refuse
from service.nn import MLP, Callback, EpochRecord, ModelSpec, Normalization, Progress, fit, make_optimizer
from service.nn.ensemble import merge_members
from service.store import ModelStore
from service.training_config import TrainingConfig

log = logging.getLogger(__name__)


@dataclass
class TrainingResult:
    network: MLP
    history: list[EpochRecord]
    metrics: dict[str, Any]
    seconds: float
    notes: list[str] = field(default_factory=list)


def input_normalization(pixels: np.ndarray) -> Normalization:
    """Mean and std of the training pixels on the 0-1 scale."""
    unit = pixels.astype(np.float32) / np.float32(255.0)
    return Normalization(mean=float(unit.mean()), std=float(unit.std()) or 1.0)


def _streams(config: TrainingConfig, member: int = 0) -> tuple[np.random.Generator, ...]:
    # Independent streams (split, then init, training and dropout per member), so e.g. a different
    # split fraction does not change the initial weights; spawned children do not depend on how many
    # are spawned, so member 0 of an ensemble is the network trained alone with the same seed.
    streams = np.random.default_rng(config.seed).spawn(1 + 3 * (member + 1))
    return (streams[0], *streams[1 + 3 * member :])


def split_indices(config: TrainingConfig, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices that ``train`` uses for this config, reproducible from it."""
    return stratified_split(labels, config.validation_split, _streams(config)[0])


def dataset_split(config: TrainingConfig, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices of ``dataset``: people's corrections, when it has them, all go to
    training, and its own images split as they would without them, so that a version trained with
    corrections is measured on the same held-out images as one trained without."""
    if dataset.corrections is None:
        return split_indices(config, dataset.train_y)
    own = np.flatnonzero(~dataset.corrections)
    train_idx, val_idx = split_indices(config, dataset.train_y[own])
    return np.concatenate([own[train_idx], np.flatnonzero(dataset.corrections)]), own[val_idx]


def train(
    config: TrainingConfig,
    dataset: Dataset,
    callback: Callback | None = None,
    start: MLP | None = None,
) -> TrainingResult:
    """Split, normalize, initialize (or start from ``start``, whose weights are changed) and train;
    evaluate on validation and test splits. Corrections in the training split are repeated
    ``feedback_weight`` times. With ``config.members`` > 1 (and no ``start``) that many networks
    are trained on the same split, one after another, and merged (``service.nn.ensemble``)."""
    started = time.perf_counter()
    train_idx, val_idx = dataset_split(config, dataset)
    if dataset.corrections is not None:
        corrections = np.flatnonzero(dataset.corrections)
        train_idx = np.concatenate([train_idx, np.repeat(corrections, config.feedback_weight - 1)])
    train_pixels = dataset.train_x[train_idx]
    if start is None:
        spec = ModelSpec(
            input_size=dataset.train_x.shape[1],
            hidden=config.hidden,
            num_classes=len(dataset.info.class_names),
            normalization=input_normalization(train_pixels),
            class_names=dataset.info.class_names,
        )
    count = 1 if start is not None else config.members
    log.info(
        "training %s on %d samples (%d validation), hidden=%s, %d epochs, %d member(s)",
        dataset.info.name,
        len(train_idx),
        len(val_idx),
        list(config.hidden),
        config.epochs,
        count,
    )
    members: list[MLP] = []
    history: list[EpochRecord] = []
    for member in range(count):
        _, init_rng, train_rng, dropout_rng = _streams(config, member)
        if start is not None:
            network = start
        else:
            network = MLP.initialize(spec, init_rng, init=config.weight_init, std=config.init_std)
        network.regularize(dropout=config.dropout, label_smoothing=config.label_smoothing, rng=dropout_rng)
        optimizer = make_optimizer(
            config.optimizer,
            config.learning_rate,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            average=config.weight_average,
        )
        if not members:  # members share the split and its input normalization: normalized once
            x_train = network.normalize(train_pixels)
            validation = (network.normalize(dataset.train_x[val_idx]), dataset.train_y[val_idx])
        records = fit(
            network,
            optimizer,
            x_train,
            dataset.train_y[train_idx],
            epochs=config.epochs,
            batch_size=config.batch_size,
            rng=train_rng,
            validation=validation if len(val_idx) else None,
            augmentation=config.augmentation,
            schedule=config.lr_schedule,
            callback=_MemberCallback(callback, member, count, config.epochs) if count > 1 else callback,
        )
        history += [replace(record, epoch=record.epoch + member * config.epochs) for record in records]
        members.append(network)
    network, last = members[0], history[-1]
    if len(members) > 1:
        network = merge_members(members)
        last = _ensemble_record(network, history[config.epochs - 1 :: config.epochs], validation)
    augmented = config.augmentation is not None and config.augmentation.active
    metrics = honest_metrics(
        network, last, dataset, len(train_idx), len(val_idx), augmented=augmented, members=len(members)
    )
    return TrainingResult(network, history, metrics, time.perf_counter() - started, list(dataset.notes))


def _ensemble_record(
    network: MLP, last_epochs: list[EpochRecord], validation: tuple[np.ndarray, np.ndarray]
) -> EpochRecord:
    """The merged network's last epoch: its members' mean loss and training accuracy (as their last
    epochs saw them), and its own validation accuracy."""
    return EpochRecord(
        epoch=last_epochs[-1].epoch,
        loss=float(np.mean([record.loss for record in last_epochs])),
        train_accuracy=float(np.mean([record.train_accuracy for record in last_epochs])),
        val_accuracy=network.accuracy(*validation) if len(validation[1]) else None,
        seconds=last_epochs[-1].seconds,
    )


class _MemberCallback(Callback):
    """Reports an ensemble's training as one run of ``members * epochs`` epochs."""

    def __init__(self, inner: Callback | None, member: int, members: int, epochs: int) -> None:
        self.inner, self.offset, self.epochs = inner or Callback(), member * epochs, members * epochs

    def on_batch_end(self, progress: Progress) -> None:
        self.inner.on_batch_end(replace(progress, epoch=progress.epoch + self.offset, epochs=self.epochs))

    def on_epoch_end(self, record: EpochRecord) -> None:
        self.inner.on_epoch_end(replace(record, epoch=record.epoch + self.offset))


def drift_reference(network: MLP, config: TrainingConfig, dataset: Dataset) -> dict[str, Any] | None:
    """``service.drift.reference`` on the digits the network never trained on: its test split if
    the data has one, else its validation split; None without either."""
    if dataset.test_x is not None and len(dataset.test_x):
        held_out = dataset.test_x
    else:
        held_out = dataset.train_x[dataset_split(config, dataset)[1]]
    if not len(held_out):
        return None
    return drift.reference(network.predict_proba(network.normalize(held_out)))


def train_and_save(
    config: TrainingConfig,
    dataset: Dataset,
    store: ModelStore,
    model_name: str,
    *,
    callback: Callback | None = None,
    make_default: bool = False,
    job: str | None = None,
    before_save: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], TrainingResult]:
    """Train on ``dataset`` and save the network as the next version of ``model_name``, with what
    it was trained on and how; the one flow of ``backprop train`` and of training jobs.

    ``before_save`` runs between training and saving: a job checks there that it still owns
    itself. Returns the saved version's metadata and the training result."""
    store.model_dir(model_name)  # a bad name fails now, not after the training
    start, started_from = None, None
    if config.fine_tune:
        start, started_from, kept = _starting_point(store, model_name, dataset)
        config = config.model_copy(update={"hidden": start.spec.hidden, "members": 1, **kept})
    result = train(config, dataset, callback, start)
    if before_save is not None:
        before_save()
    meta = store.save(
        model_name,
        result.network,
        {
            "dataset": {
                "name": dataset.info.name,
                "source": str(dataset.source),
                "notes": result.notes,
                "train_samples": int(len(dataset.train_y)),
                "train_sha256": dataset.fingerprint(),
            },
            "training": config.model_dump(mode="json"),
            "metrics": result.metrics,
            "drift_reference": drift_reference(result.network, config, dataset),
            "history": [record.to_dict() for record in result.history],
            "train_seconds": result.seconds,
            "fine_tuned_from": started_from,
            "job": job,
        },
    )
    if make_default:
        store.set_default(model_name, meta["version"])
    return meta, result


def _starting_point(
    store: ModelStore, model_name: str, dataset: Dataset
) -> tuple[MLP, dict[str, Any], dict[str, Any]]:
    """The network a fine-tuning starts from (the model's default version), which it is, and the
    settings it keeps from it: its split (validation_split and seed), so that the new version's
    held-out images are the ones neither ever trained on; the data must be the same for that too."""
    if not store.versions(model_name):
        raise Conflict(f"{model_name} has no default version to fine-tune: train one first")
    version = store.default_version(model_name)
    stored, meta = store.load(model_name, version)
    if stored.spec.class_names != dataset.info.class_names:
        raise Conflict(f"{model_name} v{version} tells other classes apart than {dataset.info.name}'s")
    own = (
        dataset
        if dataset.corrections is None
        else replace(
            dataset,
            train_x=dataset.train_x[~dataset.corrections],
            train_y=dataset.train_y[~dataset.corrections],
        )
    )
    try:
        same_data_or_refuse(meta, own)
    except DatasetError as exc:
        raise Conflict(
            f"{model_name} v{version} cannot be fine-tuned on this data: {exc.message.split(': ')[0]}; its "
            "held-out images would include ones it learned. Fine-tune with the data it was trained on"
        ) from exc
    trained = meta.get("training") or {}
    kept = {key: trained[key] for key in ("validation_split", "seed") if key in trained}
    network = stored.astype(stored.dtype)  # its own weights, which training changes
    return network, {"model": model_name, "version": version}, kept
