"""Why the network said what it said: how much each input pixel moved a class score.

All three methods come from the layers' own backward passes, one step further than training goes,
down to the input:

- ``input_gradient``: the gradient of a class score (its logit or its log-probability) with
  respect to the network's input, for a batch;
- ``integrated_gradients`` (Sundararajan et al. 2017): that gradient averaged along the straight
  path from a baseline (black, by default) to the image, by a Riemann sum at the midpoints of
  ``steps`` intervals, times the distance travelled; the attributions add up to the score's change;
- ``smoothgrad`` (Smilkov et al. 2017): the gradient averaged over noisy copies of the image.

Attributions are per pixel, shape (N, 784) for MNIST. The network's input is the normalized pixels;
integrated gradients are the same in either space, while gradients are rescaled to pixel units.
Every function here builds layers of its own around the network's parameters: no cache is shared,
so explanations may run in any thread beside predictions.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from service.nn.layers import Linear, ReLU, softmax
from service.nn.network import MLP

Score = Literal["logit", "log_probability"]
DEFAULT_STEPS = 128  # completeness within 5% (the paper's advice) for the shipped model's digits
MAX_PATH_POINTS = 4096  # images x steps per forward/backward pass: bounds the memory of one pass


def input_gradient(
    network: MLP, x: np.ndarray, targets: np.ndarray, *, score: Score = "logit"
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N,) of classes ``targets`` (N,) for normalized inputs ``x`` (N, D), and their
    gradients with respect to ``x``, (N, D)."""
    layers: list[Linear | ReLU] = []
    depth = len(network.spec.hidden) + 1
    for i in range(1, depth + 1):
        layers.append(Linear(network.params[f"W{i}"], network.params[f"b{i}"]))
        if i < depth:
            layers.append(ReLU())
    out = x
    for layer in layers:
        out = layer.forward(out)
    rows = np.arange(len(targets))
    dscore = np.zeros_like(out)
    dscore[rows, targets] = 1.0
    if score == "logit":
        scores = out[rows, targets].copy()
    else:
        shifted = out - out.max(axis=1, keepdims=True)
        scores = shifted[rows, targets] - np.log(np.exp(shifted).sum(axis=1))
        dscore -= softmax(out)  # d log p_t / d logits = onehot(t) - p
    for layer in reversed(layers):
        dscore = layer.backward(dscore)
    return scores, dscore.copy()


def _pixel_scale(network: MLP) -> float:
    """d(normalized input) / d(pixel): the gradient in pixel units is the input gradient times it."""
    norm = network.spec.normalization
    return 1.0 / (norm.pixel_max * norm.std)


def gradients(network: MLP, pixels: np.ndarray, targets: np.ndarray, *, score: Score = "logit") -> np.ndarray:
    """Per-pixel gradients (N, D) of the target scores of raw ``pixels`` (N, D), 0-255."""
    _, grad = input_gradient(network, network.normalize(pixels), targets, score=score)
    return grad * network.dtype.type(_pixel_scale(network))


def integrated_gradients(
    network: MLP,
    pixels: np.ndarray,
    targets: np.ndarray,
    *,
    steps: int = DEFAULT_STEPS,
    baseline: np.ndarray | None = None,
    score: Score = "logit",
) -> tuple[np.ndarray, np.ndarray]:
    """Attributions (N, D) of raw ``pixels`` (N, D) to the target scores, from ``baseline`` (D,)
    (default: a black image), and the score differences F(image) - F(baseline) (N,) that they add
    up to (completeness), to the error of the Riemann sum."""
    x = network.normalize(pixels)
    base = network.normalize(np.zeros((1, x.shape[1])) if baseline is None else baseline.reshape(1, -1))
    alphas = ((np.arange(steps) + 0.5) / steps).astype(x.dtype)  # interval midpoints
    attributions = np.empty_like(x)
    per_pass = max(1, MAX_PATH_POINTS // steps)
    for start in range(0, len(x), per_pass):
        chunk, chunk_targets = x[start : start + per_pass], targets[start : start + per_pass]
        delta = chunk - base  # (n, D)
        path = base[None] + alphas[None, :, None] * delta[:, None, :]  # (n, steps, D)
        _, grad = input_gradient(
            network, path.reshape(-1, x.shape[1]), np.repeat(chunk_targets, steps), score=score
        )
        attributions[start : start + len(chunk)] = delta * grad.reshape(len(chunk), steps, -1).mean(axis=1)
    top, _ = input_gradient(network, x, targets, score=score)
    bottom, _ = input_gradient(network, np.repeat(base, len(x), axis=0), targets, score=score)
    return attributions, top - bottom


def smoothgrad(
    network: MLP,
    pixels: np.ndarray,
    targets: np.ndarray,
    rng: np.random.Generator,
    *,
    samples: int = 32,
    noise: float = 0.15,
    score: Score = "logit",
) -> np.ndarray:
    """Per-pixel gradients (N, D) averaged over ``samples`` copies of each image with Gaussian
    noise of std ``noise`` times the pixel range added."""
    n, d = pixels.shape
    sigma = noise * network.spec.normalization.pixel_max
    noisy = np.repeat(np.asarray(pixels, dtype=np.float64), samples, axis=0) + rng.normal(
        0, sigma, (n * samples, d)
    )
    grad = gradients(network, noisy, np.repeat(targets, samples), score=score)
    return grad.reshape(n, samples, d).mean(axis=1)


Method = Literal["gradient", "integrated_gradients", "smoothgrad"]


def explain(
    network: MLP,
    pixels: np.ndarray,
    targets: np.ndarray,
    *,
    method: Method = "integrated_gradients",
    score: Score = "logit",
    steps: int = DEFAULT_STEPS,
    samples: int = 32,
    noise: float = 0.15,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Attributions (N, D) of raw ``pixels`` (N, D), 0-255, to the scores of classes ``targets``
    (N,) by ``method``; with integrated gradients also the score changes (N,) they add up to."""
    if method == "integrated_gradients":
        return integrated_gradients(network, pixels, targets, steps=steps, score=score)
    if method == "smoothgrad":
        rng = rng if rng is not None else np.random.default_rng(0)
        return smoothgrad(network, pixels, targets, rng, samples=samples, noise=noise, score=score), None
    return gradients(network, pixels, targets, score=score), None
