"""Numerical gradient check: central differences in float64 against backpropagation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from service.nn.layers import Dropout
from service.nn.network import MLP, ModelSpec


@dataclass(frozen=True)
class ParamCheck:
    """Relative error ``|a - n| / (|a| + |n|)`` (norms over the array) for one parameter."""

    name: str
    shape: tuple[int, ...]
    relative_error: float
    max_abs_diff: float


def numerical_gradient(f: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f / d array by central differences, perturbing ``array`` in place and restoring it."""
    grad = np.zeros_like(array, dtype=np.float64)
    flat = array.reshape(-1)
    out = grad.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        plus = f()
        flat[i] = original - eps
        minus = f()
        flat[i] = original
        out[i] = (plus - minus) / (2 * eps)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    denom = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    if denom == 0.0:
        return 0.0
    return float(np.linalg.norm(analytic - numeric) / denom)


def check_network(network: MLP, x: np.ndarray, targets: np.ndarray, eps: float = 1e-6) -> list[ParamCheck]:
    """Compare backprop with central differences for every parameter of ``network``.

    The check runs on a float64 copy, so ``network`` itself is not touched. ``x`` (N, input_size)
    is already normalized; ``targets`` are (N,) labels or (N, C) one-hot.
    """
    net = network.astype(np.float64)
    x = np.asarray(x, dtype=np.float64)
    net.gradient(x, targets)
    for layer in net.layers:  # dropout keeps the masks of that pass: the same function every call
        if isinstance(layer, Dropout):
            layer.frozen = True
    analytic = {key: grad.copy() for key, grad in net.grads.items()}
    results = []
    for key, param in net.params.items():
        numeric = numerical_gradient(lambda: net.loss(x, targets), param, eps)
        results.append(
            ParamCheck(
                name=key,
                shape=param.shape,
                relative_error=relative_error(analytic[key], numeric),
                max_abs_diff=float(np.max(np.abs(analytic[key] - numeric))),
            )
        )
    return results


def random_check(
    rng: np.random.Generator,
    *,
    input_size: int = 12,
    hidden: tuple[int, ...] = (10, 8),
    num_classes: int = 5,
    batch: int = 7,
    one_hot: bool = False,
    dropout: float = 0.0,
    label_smoothing: float = 0.0,
) -> list[ParamCheck]:
    """Gradient check of a freshly initialized network on random data (what ``gradcheck`` runs),
    with dropout (its masks held for the check) and label smoothing when asked."""
    spec = ModelSpec(
        input_size=input_size,
        hidden=hidden,
        num_classes=num_classes,
        class_names=tuple(str(c) for c in range(num_classes)),
    )
    network = MLP.initialize(spec, rng, dtype=np.float64)
    # Non-zero biases, so the check also covers how they move the ReLU kinks.
    for key, param in network.params.items():
        if key.startswith("b"):
            param[...] = rng.normal(0.0, 0.1, size=param.shape)
    network.regularize(dropout=dropout, label_smoothing=label_smoothing, rng=rng)
    x = rng.standard_normal((batch, input_size))
    labels = rng.integers(0, num_classes, size=batch)
    targets = np.eye(num_classes)[labels] if one_hot else labels
    return check_network(network, x, targets)
