"""Explanations from backprop: the input gradient against central differences (float64),
integrated gradients' completeness, and the randomization sanity check of Adebayo et al. 2018."""

import json

import numpy as np
import pytest

from service.nn import MLP, ModelSpec, model_file
from service.nn.explain import DEFAULT_STEPS, gradients, input_gradient, integrated_gradients, smoothgrad

TOLERANCE = 1e-6


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's: Pearson's correlation of the ranks."""
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


@pytest.fixture(scope="module")
def shipped(shipped_store) -> MLP:
    return model_file.load(shipped_store / "mnist" / "v1.npz")


@pytest.mark.parametrize("score", ["logit", "log_probability"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_the_input_gradient_equals_central_differences(score, depth):
    rng = np.random.default_rng(depth)
    spec = ModelSpec(input_size=12, hidden=(9,) * depth, num_classes=5, class_names=tuple("abcde"))
    network = MLP.initialize(spec, rng, dtype=np.float64)
    x, targets = rng.standard_normal((4, 12)), rng.integers(0, 5, 4)
    scores, grad = input_gradient(network, x, targets, score=score)
    eps = 1e-6
    numeric = np.empty_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            up, down = x.copy(), x.copy()
            up[i, j] += eps
            down[i, j] -= eps
            plus, _ = input_gradient(network, up, targets, score=score)
            minus, _ = input_gradient(network, down, targets, score=score)
            numeric[i, j] = (plus[i] - minus[i]) / (2 * eps)
    error = np.abs(grad - numeric).max() / max(np.abs(numeric).max(), 1e-12)
    assert error < TOLERANCE
    logits = network.logits(x.copy())
    expected = logits[np.arange(4), targets]
    if score == "log_probability":
        expected = expected - np.log(np.exp(logits).sum(axis=1))
    assert np.allclose(scores, expected)
    assert np.array_equal(x, x.copy())  # the input is left as it was


def test_integrated_gradients_add_up_to_the_score_change(shipped, real_digits):
    images, labels = real_digits
    pick = np.arange(0, 500, 25)  # 20 digits, two of each class
    attributions, change = integrated_gradients(shipped, images[pick], labels[pick], steps=DEFAULT_STEPS)
    assert attributions.shape == (20, 784)
    # Completeness (Sundararajan et al. 2017): within the 5% they advise at the default steps, and
    # closer with more steps.
    error = np.abs(attributions.sum(axis=1) - change) / np.abs(change)
    assert error.max() <= 0.05
    finer, change = integrated_gradients(shipped, images[pick], labels[pick], steps=4 * DEFAULT_STEPS)
    finer_error = np.abs(finer.sum(axis=1) - change) / np.abs(change)
    assert np.median(finer_error) < np.median(error) / 2 and finer_error.max() < 0.02
    # Pixels that are black in the image attribute nothing from a black baseline.
    assert np.all(attributions[images[pick] == 0] == 0)


def test_maps_change_when_the_weights_are_randomized(shipped, real_digits):
    # Adebayo et al. 2018: a map that survives randomizing the weights explains the image, not the
    # model. Two SmoothGrad runs of the trained model (other noise) must agree far better.
    images, labels = real_digits
    pick = np.arange(3, 500, 50)
    trained_a = smoothgrad(shipped, images[pick], labels[pick], np.random.default_rng(1))
    trained_b = smoothgrad(shipped, images[pick], labels[pick], np.random.default_rng(2))
    randomized = MLP.initialize(shipped.spec, np.random.default_rng(3))
    shuffled = smoothgrad(randomized, images[pick], labels[pick], np.random.default_rng(1))
    same = np.mean(
        [_rank_correlation(np.abs(a), np.abs(b)) for a, b in zip(trained_a, trained_b, strict=True)]
    )
    other = np.mean(
        [_rank_correlation(np.abs(a), np.abs(b)) for a, b in zip(trained_a, shuffled, strict=True)]
    )
    assert same > 0.6 and other < same - 0.3, (same, other)


def test_gradients_are_in_pixel_units(shipped, real_digits):
    images, labels = real_digits
    pixels = images[:2].astype(np.float64)
    grad = gradients(shipped, pixels, labels[:2])
    step = np.zeros_like(pixels)
    step[:, 300] = 1.0  # one grey level more on one pixel
    logits = lambda p: shipped.logits(shipped.normalize(p))[np.arange(2), labels[:2]]  # noqa: E731
    assert np.allclose(logits(pixels + step) - logits(pixels), grad[:, 300], rtol=0.05, atol=1e-4)
    assert json.dumps(grad.shape) == "[2, 784]"
