"""Optimizers that update a params dict in place from a grads dict with the same keys.

State lives in ``state[name][key]`` (e.g. ``state["m"]["W1"]``), keyed like the parameters. Each
update is an elementwise kernel of in-place ufuncs with one scratch buffer per key, so a step
allocates nothing: for the default network the optimizer is the largest cost after the matrix
products, and it is memory-bound. Weight decay is decoupled (AdamW-style) and applies to weight
matrices (``W*`` keys) only, never to biases.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Literal

import numpy as np

OptimizerName = Literal["sgd", "momentum", "adam"]


class Optimizer:
    state_names: tuple[str, ...] = ()

    def __init__(self, lr: float, weight_decay: float = 0.0, average: float = 0.0) -> None:
        if lr <= 0:
            raise ValueError("learning rate must be positive")
        if not 0.0 <= average < 1.0:
            raise ValueError("the weights' average decays by a factor in [0, 1)")
        self.lr = lr
        self.weight_decay = weight_decay
        self.average = average
        self.state: dict[str, dict[str, np.ndarray]] = {name: {} for name in self.state_names}
        self.averages: dict[str, np.ndarray] = {}
        self._scratch: dict[str, np.ndarray] = {}
        self._steps = 0

    def _next_scalars(self) -> tuple:
        """Constants of this step for ``_kernel``; called once per step."""
        return ()

    def _kernel(self, param, grad, tmp, *states_and_scalars) -> None:
        raise NotImplementedError

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every ``params[key]`` in place from ``grads[key]``."""
        scalars = self._next_scalars()
        for key, param in params.items():
            grad = grads[key]
            if grad.shape != param.shape:
                raise ValueError(f"gradient {key} has shape {grad.shape}, parameter {param.shape}")
            tmp = self._scratch.get(key)
            if tmp is None:
                tmp = self._scratch[key] = np.empty_like(param)
                for name in self.state_names:
                    self.state[name][key] = np.zeros_like(param)
            if self.weight_decay and key.startswith("W"):
                param *= param.dtype.type(1.0 - self.lr * self.weight_decay)
            cast = param.dtype.type
            states = [self.state[name][key] for name in self.state_names]
            self._kernel(param, grad, tmp, *states, *(cast(s) for s in scalars))
        if self.average:
            self._average(params)

    def _average(self, params: dict[str, np.ndarray]) -> None:
        # Polyak averaging, as an exponential moving average whose decay grows to ``average`` over
        # the first steps: the random initial weights fade out of it at once.
        self._steps += 1
        decay = min(self.average, (1.0 + self._steps) / (10.0 + self._steps))
        for key, param in params.items():
            averaged = self.averages.get(key)
            if averaged is None:
                self.averages[key] = param.copy()
                continue
            tmp = self._scratch[key]
            np.multiply(param, param.dtype.type(1.0 - decay), out=tmp)
            averaged *= param.dtype.type(decay)
            averaged += tmp

    @contextlib.contextmanager
    def averaged_weights(self, params: dict[str, np.ndarray]) -> Iterator[None]:
        """``params`` hold the averaged weights inside the block (no average kept: unchanged)."""
        if not self.averages:
            yield
            return
        kept = {key: param.copy() for key, param in params.items()}
        for key, param in params.items():
            param[...] = self.averages[key]
        try:
            yield
        finally:
            for key, param in params.items():
                param[...] = kept[key]

    def keep_averages(self, params: dict[str, np.ndarray]) -> None:
        """Replace ``params`` with the averaged weights, for good (the end of training)."""
        for key, param in params.items():
            if key in self.averages:
                param[...] = self.averages[key]


class SGD(Optimizer):
    """``p -= lr * g``."""

    def _next_scalars(self) -> tuple:
        return (self.lr,)

    def _kernel(self, param, grad, tmp, lr) -> None:
        np.multiply(grad, lr, out=tmp)
        param -= tmp


class Momentum(Optimizer):
    """Heavy ball: ``v = mu * v - lr * g; p += v``."""

    state_names = ("velocity",)

    def __init__(
        self, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, average: float = 0.0
    ) -> None:
        super().__init__(lr, weight_decay, average)
        self.momentum = momentum

    def _next_scalars(self) -> tuple:
        return (self.momentum, self.lr)

    def _kernel(self, param, grad, tmp, velocity, momentum, lr) -> None:
        np.multiply(grad, lr, out=tmp)
        velocity *= momentum
        velocity -= tmp
        param += velocity


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction.

    The moments are stored pre-divided by ``1 - beta``: ``m' = beta1 m' + g`` and
    ``v' = beta2 v' + g^2`` take two passes each instead of three, and the constant factors
    fold into the per-step scalars. The update is exactly Adam's.
    """

    state_names = ("m", "v")

    def __init__(
        self,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        average: float = 0.0,
    ) -> None:
        super().__init__(lr, weight_decay, average)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0

    def _next_scalars(self) -> tuple:
        self.t += 1
        # m_hat = (1-b1) m' / (1-b1^t); sqrt(v_hat) = c sqrt(v') with c = sqrt((1-b2) / (1-b2^t)).
        c = math.sqrt((1.0 - self.beta2) / (1.0 - self.beta2**self.t))
        step = self.lr * (1.0 - self.beta1) / (1.0 - self.beta1**self.t) / c
        return (self.beta1, self.beta2, self.eps / c, step)

    def _kernel(self, param, grad, tmp, m, v, beta1, beta2, eps, step) -> None:
        m *= beta1
        m += grad
        np.multiply(grad, grad, out=tmp)
        v *= beta2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += eps
        np.divide(m, tmp, out=tmp)
        tmp *= step
        param -= tmp


def make_optimizer(
    name: OptimizerName,
    lr: float,
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    average: float = 0.0,
) -> Optimizer:
    """``average`` > 0: the optimizer also keeps an exponential moving average of the weights with
    that decay (``averages``), which ``fit`` measures and leaves in the network at the end."""
    if name == "sgd":
        return SGD(lr, weight_decay=weight_decay, average=average)
    if name == "momentum":
        return Momentum(lr, momentum=momentum, weight_decay=weight_decay, average=average)
    if name == "adam":
        return Adam(lr, weight_decay=weight_decay, average=average)
    raise ValueError(f"unknown optimizer {name!r}")
