"""Layers with explicit forward and backward passes.

Conventions (after deep-learning-from-scratch's ``common/``): a layer keeps its trainable arrays in
``params`` and the matching gradients in ``grads`` (same keys). ``forward`` caches exactly what
``backward`` needs; ``backward(dout)`` returns the gradient with respect to the layer's input,
fills ``grads``, never mutates ``dout`` and never updates the parameters (optimizers do that).
"""

from __future__ import annotations

import numpy as np


def _workspace(buffer: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Reuse ``buffer`` when it fits, so a training step allocates no large arrays.

    Outputs written into a workspace are overwritten by the layer's next call: the training
    loop consumes them before that, and the inference path (``MLP.logits``) does not use them.
    """
    if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
        return np.empty(shape, dtype=dtype)
    return buffer


class Linear:
    """Affine map ``y = x @ W + b``.

    Shapes: ``x`` (N, fan_in), ``W`` (fan_in, fan_out), ``b`` (fan_out,), ``y`` (N, fan_out).
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        if weight.ndim != 2 or bias.shape != (weight.shape[1],):
            raise ValueError(f"Linear needs W (in, out) and b (out,), got {weight.shape} and {bias.shape}")
        self.params = {"W": weight, "b": bias}
        self.grads = {"W": np.zeros_like(weight), "b": np.zeros_like(bias)}
        # The first layer's input is data: its gradient is never used, and skipping it saves
        # the largest matrix product of the backward pass.
        self.needs_input_grad = True
        self._x: np.ndarray | None = None
        self._out: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, fan_in) -> (N, fan_out)."""
        weight = self.params["W"]
        self._x = x
        out = self._out = _workspace(self._out, (x.shape[0], weight.shape[1]), np.result_type(x, weight))
        np.matmul(x, weight, out=out)
        out += self.params["b"]
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """(N, fan_out) -> (N, fan_in), or None when ``needs_input_grad`` is off."""
        if self._x is None:
            raise RuntimeError("Linear.backward called before forward")
        np.matmul(self._x.T, dout, out=self.grads["W"])
        np.sum(dout, axis=0, out=self.grads["b"])
        if not self.needs_input_grad:
            return None
        weight = self.params["W"]
        dx = self._dx = _workspace(self._dx, (dout.shape[0], weight.shape[0]), np.result_type(dout, weight))
        return np.matmul(dout, weight.T, out=dx)


class ReLU:
    """Elementwise ``max(x, 0)``; shape-preserving. Has no parameters."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._active: np.ndarray | None = None
        self._out: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, D)."""
        # The mask as 0.0/1.0 in the input's dtype, and the output as input times mask: a
        # comparison and a same-dtype multiply are NumPy's fastest loops, 3x faster here than
        # maximum() and sign(). (A negative input gives -0.0 where maximum() gives 0.0; every
        # later sum, and so the training, is the same.)
        active = self._active = _workspace(self._active, x.shape, x.dtype)
        np.greater(x, 0, out=active)
        out = self._out = _workspace(self._out, x.shape, x.dtype)
        return np.multiply(x, active, out=out)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, D)."""
        if self._active is None:
            raise RuntimeError("ReLU.backward called before forward")
        dx = self._dx = _workspace(self._dx, dout.shape, np.result_type(dout, self._active))
        return np.multiply(dout, self._active, out=dx)


class Dropout:
    """Inverted dropout: in training, each value is zeroed with probability ``rate`` and the rest
    scaled by ``1 / (1 - rate)``, so inference (``MLP.logits``, which has no dropout) needs no
    rescaling. The masks come from ``rng``; shape-preserving, no parameters."""

    def __init__(self, rate: float, rng: np.random.Generator) -> None:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate, self.rng = rate, rng
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.frozen = False  # keep the last mask: a gradient check needs the same function each call
        self._mask: np.ndarray | None = None
        self._out: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, D)."""
        if not (self.frozen and self._mask is not None and self._mask.shape == x.shape):
            mask = self._mask = _workspace(self._mask, x.shape, x.dtype)
            self.rng.random(dtype=x.dtype, out=mask)  # float32 or float64, as the network is
            np.multiply(mask >= self.rate, x.dtype.type(1.0 / (1.0 - self.rate)), out=mask)
        out = self._out = _workspace(self._out, x.shape, x.dtype)
        return np.multiply(x, self._mask, out=out)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, D)."""
        if self._mask is None:
            raise RuntimeError("Dropout.backward called before forward")
        dx = self._dx = _workspace(self._dx, dout.shape, np.result_type(dout, self._mask))
        return np.multiply(dout, self._mask, out=dx)


class SoftmaxCrossEntropy:
    """Softmax over logits fused with the mean cross-entropy loss.

    Accepts integer class labels of shape (N,) or one-hot/probability targets of shape (N, C).
    The loss is computed from log-softmax, so it stays finite for any logits. With
    ``label_smoothing`` e, a label's target is ``1 - e`` on its class and ``e / C`` spread over all
    C classes (Szegedy et al. 2016): the network is not pushed towards infinite logits.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._probs: np.ndarray | None = None
        self._targets: np.ndarray | None = None

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """logits (N, C), targets (N,) int or (N, C) -> scalar mean loss."""
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        sums = exp.sum(axis=1, keepdims=True)
        log_norm = np.log(sums)
        n = logits.shape[0]
        if targets.ndim == 1:
            picked = shifted[np.arange(n), targets] - log_norm[:, 0]
            loss = -float(picked.mean())
            if self.label_smoothing:
                spread = float((shifted - log_norm).mean())  # the mean log-probability over classes
                loss = (1.0 - self.label_smoothing) * loss - self.label_smoothing * spread
        elif targets.shape == logits.shape:
            loss = -float(np.sum(targets * (shifted - log_norm)) / n)
        else:
            raise ValueError(f"targets must be (N,) labels or {logits.shape} one-hot, got {targets.shape}")
        exp /= sums
        self._probs = exp
        self._targets = targets
        return loss

    def backward(self, dout: float = 1.0) -> np.ndarray:
        """Gradient of ``dout * loss`` with respect to the logits, (N, C)."""
        if self._probs is None or self._targets is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before forward")
        probs, targets = self._probs, self._targets
        n = probs.shape[0]
        if targets.ndim == 1:
            # Subtracting at the label avoids building a one-hot matrix for every batch.
            dx = probs.copy()
            dx[np.arange(n), targets] -= 1.0 - self.label_smoothing
            if self.label_smoothing:
                dx -= self.label_smoothing / probs.shape[1]
        else:
            dx = probs - targets
        dx *= dout / n
        return dx


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, (N, C) -> (N, C), stable for large logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted
