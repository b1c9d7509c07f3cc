"""What a trained network is measured on, said with each figure: its accuracies on the training,
validation and test images, on held-out corrections when it trained on some, and the rule that a
model's validation split is drawn again only from the data it was trained on."""

from __future__ import annotations

from typing import Any

from service.data import Dataset
from service.errors import DatasetError
from service.nn import MLP, EpochRecord


def honest_metrics(
    network: MLP,
    last: EpochRecord,
    dataset: Dataset,
    train_samples: int,
    validation_samples: int,
    *,
    augmented: bool,
    members: int = 1,
) -> dict[str, Any]:
    """The accuracies, with what each was measured on and its size; ``held_out_*`` name the best
    measure of digits never trained on: the test split if the data has one, else the validation
    split, standing in for it."""
    metrics: dict[str, Any] = {
        "train_samples": train_samples,
        "validation_samples": validation_samples,
        "loss": last.loss,
        "train_accuracy": last.train_accuracy,
        "validation_accuracy": last.val_accuracy,
        "test_samples": None,
        "test_accuracy": None,
    }
    measured_on = {
        "train_accuracy": f"the {train_samples} training images as the last epoch trained on them"
        + (", distorted" if augmented else "")
        + (f"; the mean of the {members} members'" if members > 1 else ""),
        "validation_accuracy": (
            f"the {validation_samples} validation images, held out of the training file, never trained on"
            if validation_samples
            else "none: validation_split is 0"
        ),
    }
    if dataset.test_x is not None and dataset.test_y is not None:
        metrics["test_samples"] = int(len(dataset.test_y))
        metrics["test_accuracy"] = network.accuracy(network.normalize(dataset.test_x), dataset.test_y)
        measured_on["test_accuracy"] = f"the {metrics['test_samples']} images of the test files"
        held_out = "test"
    else:
        measured_on["test_accuracy"] = "none: the training data has no test files"
        held_out = "validation" if validation_samples else None
    if dataset.held_out_corrections is not None:
        pixels, labels = dataset.held_out_corrections
        metrics["corrections_samples"] = int(len(labels))
        metrics["corrections_accuracy"] = (
            network.accuracy(network.normalize(pixels), labels) if len(labels) else None
        )
        measured_on["corrections_accuracy"] = (
            f"the {len(labels)} held-out corrections (every fifth by id), never trained on"
        )
    metrics["held_out_split"] = held_out
    metrics["held_out_samples"] = metrics[f"{held_out}_samples"] if held_out else None
    metrics["held_out_accuracy"] = metrics[f"{held_out}_accuracy"] if held_out else None
    metrics["measured_on"] = measured_on
    return metrics


def same_data_or_refuse(meta: dict[str, Any], dataset: Dataset) -> None:
    """A model's validation split can be drawn again only from the data it was trained on: from
    other data (a subset, say) the "held-out" images would include ones it learned."""
    recorded = meta.get("dataset") or {}
    metrics = meta.get("metrics") or {}
    samples = recorded.get("train_samples") or (
        (metrics.get("train_samples") or 0) + (metrics.get("validation_samples") or 0)
    )
    fingerprint = recorded.get("train_sha256")
    if (fingerprint or samples) and (
        fingerprint != dataset.fingerprint() if fingerprint else samples != len(dataset.train_y)
    ):
        raise DatasetError(
            f"{meta['name']} v{meta['version']} was trained on {samples:,} images of {recorded.get('name')}, "
            f"and {dataset.source} holds other data ({len(dataset.train_y):,} images): its validation "
            "split would include images the model learned; evaluate with the data it was trained on, "
            "or with data that has test files"
        )
