"""A multilayer perceptron built from a self-describing spec.

The spec (architecture, input normalization, class names) travels inside the model file, so a
network can be rebuilt from the file alone. Parameters are one flat dict keyed ``W1, b1, W2, ...``:
the same key names the gradient, the optimizer state and the array in the ``.npz``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.nn.blocks import diagonal_blocks, multiply_blocks
from service.nn.layers import Dropout, Linear, ReLU, SoftmaxCrossEntropy, softmax

PIXEL_MAX = 255.0
MAX_PARAMETERS = 20_000_000  # 80 MB of float32: forty times the default network
DIGIT_CLASSES = [str(d) for d in range(10)]


class Normalization(BaseModel):
    """``x = (pixels / pixel_max - mean) / std``, applied before the first layer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pixel_max: float = Field(PIXEL_MAX, gt=0)
    mean: float = 0.0
    std: float = Field(1.0, gt=0)


class ModelSpec(BaseModel):
    """Everything needed to rebuild a network besides its parameter arrays."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["backprop-mlp"] = "backprop-mlp"
    format_version: Literal[1] = 1
    input_size: int = Field(784, ge=1, le=1 << 20)
    hidden: tuple[Annotated[int, Field(ge=1, le=1 << 16)], ...] = Field((256,), max_length=16)
    num_classes: int = Field(10, ge=2, le=1 << 16)
    activation: Literal["relu"] = "relu"
    normalization: Normalization = Normalization()
    class_names: tuple[str, ...] = tuple(DIGIT_CLASSES)

    @model_validator(mode="after")
    def _bounded(self) -> ModelSpec:
        # A model file is read from disk that others may write: its spec must not claim a network
        # whose arrays would exhaust memory before anything can check them.
        count = sum(int(np.prod(shape)) for shape in self.param_shapes().values())
        if count > MAX_PARAMETERS:
            raise ValueError(f"{count:,} parameters, more than the {MAX_PARAMETERS:,} a model may have")
        return self

    def layer_sizes(self) -> list[int]:
        return [self.input_size, *self.hidden, self.num_classes]

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        sizes = self.layer_sizes()
        shapes: dict[str, tuple[int, ...]] = {}
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
            shapes[f"W{i}"] = (fan_in, fan_out)
            shapes[f"b{i}"] = (fan_out,)
        return shapes


def init_params(
    spec: ModelSpec,
    rng: np.random.Generator,
    *,
    init: Literal["he", "gaussian"] = "he",
    std: float = 0.01,
    dtype: np.dtype | type = np.float32,
) -> dict[str, np.ndarray]:
    """He-normal weights (``sqrt(2 / fan_in)``) or a fixed-std Gaussian; zero biases."""
    params: dict[str, np.ndarray] = {}
    for key, shape in spec.param_shapes().items():
        if key.startswith("b"):
            params[key] = np.zeros(shape, dtype=dtype)
            continue
        scale = np.sqrt(2.0 / shape[0]) if init == "he" else std
        params[key] = (rng.standard_normal(shape) * scale).astype(dtype)
    return params


class MLP:
    """Linear -> ReLU -> ... -> Linear, with softmax cross-entropy for training.

    ``params`` and ``grads`` share their keys and alias the layers' own arrays, so an optimizer
    updating ``params[key]`` in place updates the layer.
    """

    def __init__(self, spec: ModelSpec, params: dict[str, np.ndarray]) -> None:
        self.spec = spec
        self.layers: list[Linear | ReLU | Dropout] = []
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        depth = len(spec.hidden) + 1
        for i in range(1, depth + 1):
            linear = Linear(params[f"W{i}"], params[f"b{i}"])
            self.layers.append(linear)
            for name in ("W", "b"):
                self.params[f"{name}{i}"] = linear.params[name]
                self.grads[f"{name}{i}"] = linear.grads[name]
            if i < depth:
                self.layers.append(ReLU())
        self.layers[0].needs_input_grad = False
        self.loss_layer = SoftmaxCrossEntropy()
        self.dropout_rate = 0.0
        self._dropout_rng: np.random.Generator | None = None
        self._blocks: dict[int, list[tuple[slice, slice, np.ndarray]]] = {}

    def regularize(self, *, dropout: float, label_smoothing: float, rng: np.random.Generator | None) -> None:
        """The training path's regularizers: inverted dropout after every hidden layer's ReLU (masks
        from ``rng``), and label smoothing in the loss. Inference (``logits``) has neither."""
        if dropout and rng is None:
            raise ValueError("dropout needs a random generator for its masks")
        self.layers = [layer for layer in self.layers if not isinstance(layer, Dropout)]
        if dropout:
            with_dropout: list[Linear | ReLU | Dropout] = []
            for layer in self.layers:
                with_dropout.append(layer)
                if isinstance(layer, ReLU):
                    with_dropout.append(Dropout(dropout, rng))
            self.layers = with_dropout
        self.loss_layer = SoftmaxCrossEntropy(label_smoothing)
        self.dropout_rate, self._dropout_rng = dropout, rng

    @classmethod
    def initialize(cls, spec: ModelSpec, rng: np.random.Generator, **init_options) -> MLP:
        return cls(spec, init_params(spec, rng, **init_options))

    @property
    def dtype(self) -> np.dtype:
        return self.params["W1"].dtype

    def astype(self, dtype: np.dtype | type) -> MLP:
        """A copy with every parameter cast to ``dtype`` (float64 for gradient checks), regularized
        as this one is."""
        copy = MLP(self.spec, {k: v.astype(dtype, copy=True) for k, v in self.params.items()})
        smoothing = self.loss_layer.label_smoothing
        copy.regularize(dropout=self.dropout_rate, label_smoothing=smoothing, rng=self._dropout_rng)
        return copy

    def normalize(self, pixels: np.ndarray, *, unit_scale: bool = False) -> np.ndarray:
        """Raw pixels (N, 784), 0-255 (or 0-1 with ``unit_scale``) -> network input, float."""
        norm = self.spec.normalization
        scale = 1.0 if unit_scale else 1.0 / norm.pixel_max
        x = np.asarray(pixels, dtype=self.dtype) * self.dtype.type(scale / norm.std)
        x -= self.dtype.type(norm.mean / norm.std)
        return x

    # -- training path: through the layers, caching for backward ----------------------------

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Normalized input (N, input_size) -> logits (N, num_classes), caching for backward."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def loss(self, x: np.ndarray, targets: np.ndarray) -> float:
        """Mean cross-entropy of a batch; targets (N,) labels or (N, C) one-hot."""
        return self.loss_layer.forward(self.forward(x), targets)

    def backward(self) -> None:
        """Fill ``grads`` for the last ``loss`` call."""
        dout = self.loss_layer.backward()
        for layer in reversed(self.layers):
            dout = layer.backward(dout)

    def gradient(self, x: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
        """(loss, logits (N, C)) of the batch; ``grads`` hold the loss gradient afterwards."""
        logits = self.forward(x)
        loss = self.loss_layer.forward(logits, targets)
        self.backward()
        return loss, logits

    # -- inference path: no caches, safe to share between threads ---------------------------

    def freeze(self) -> MLP:
        """Ready this network for serving, in place, and return it: its parameters become
        read-only (a served version never changes, so a write is a mistake and raises rather than
        leave the blocks below stale), and a weight matrix made of diagonal blocks (an ensemble's
        hidden layers, ``service.nn.ensemble``) is multiplied block by block."""
        for value in self.params.values():
            value.flags.writeable = False
        for i in range(1, len(self.spec.hidden) + 2):
            weights = self.params[f"W{i}"]
            found = diagonal_blocks(weights)
            if found:
                self._blocks[i] = [(rows, cols, weights[rows, cols].copy()) for rows, cols in found]
        return self

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Normalized input (N, input_size) -> logits (N, num_classes)."""
        depth = len(self.spec.hidden) + 1
        for i in range(1, depth + 1):
            weights = self.params[f"W{i}"]
            blocks = self._blocks.get(i)
            x = x @ weights if blocks is None else multiply_blocks(x, blocks, weights.shape[1])
            x += self.params[f"b{i}"]
            if i < depth:
                np.maximum(x, 0, out=x)
        return x

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Normalized input (N, input_size) -> class probabilities (N, num_classes)."""
        return softmax(self.logits(x))

    def non_finite_params(self) -> list[str]:
        """Keys of the parameters holding NaN or infinite values."""
        return [key for key, value in self.params.items() if not np.all(np.isfinite(value))]

    def test_prediction(self) -> str | None:
        """Why this network cannot serve, or None: every parameter finite, and a blank image gives
        a probability vector (the check ``/readyz`` runs, and that a default version must pass)."""
        bad = self.non_finite_params()
        if bad:
            return f"parameters {', '.join(bad)} hold NaN or infinite values"
        probabilities = self.predict_proba(self.normalize(np.zeros((1, self.spec.input_size))))
        if (
            probabilities.shape != (1, self.spec.num_classes)
            or not np.all(np.isfinite(probabilities))
            or not np.isclose(probabilities.sum(), 1.0)
        ):
            return "a blank image does not give a probability vector"
        return None

    def accuracy(self, x: np.ndarray, labels: np.ndarray, *, batch_size: int = 4096) -> float:
        """Fraction of rows of normalized ``x`` (N, input_size) whose argmax equals ``labels``."""
        if len(labels) == 0:
            return float("nan")
        correct = 0
        for start in range(0, len(labels), batch_size):
            stop = start + batch_size
            correct += int(np.count_nonzero(self.logits(x[start:stop]).argmax(axis=1) == labels[start:stop]))
        return correct / len(labels)
