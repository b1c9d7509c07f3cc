"""Stratified train/validation splits."""

from __future__ import annotations

import numpy as np


def stratified_split(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) with ``fraction`` of every class in validation.

    Each class contributes ``round(fraction * count)`` samples, so class balance is kept even
    for data sorted by class. Both index arrays come back shuffled.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError("validation fraction must be in [0, 1)")
    train_parts, val_parts = [], []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_val = int(round(fraction * len(members)))
        val_parts.append(members[:n_val])
        train_parts.append(members[n_val:])
    train = rng.permutation(np.concatenate(train_parts)) if train_parts else np.array([], dtype=np.int64)
    val = rng.permutation(np.concatenate(val_parts)) if val_parts else np.array([], dtype=np.int64)
    return train, val
