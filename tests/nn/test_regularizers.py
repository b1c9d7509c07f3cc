"""Dropout, label smoothing and the averaged weights: each checked against its definition, by the
gradient check in float64, and for what it must never do (touch inference, mutate its input)."""

import numpy as np
import pytest

from service.nn import MLP, ModelSpec, make_optimizer
from service.nn.gradcheck import random_check
from service.nn.layers import Dropout, SoftmaxCrossEntropy
from service.nn.trainer import fit

TOLERANCE = 1e-6


@pytest.mark.parametrize("dropout", [0.0, 0.2, 0.5])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("depth", [1, 2])
def test_regularized_networks_pass_the_gradient_check(dropout, label_smoothing, depth):
    rng = np.random.default_rng(int(10 * dropout + 100 * label_smoothing) + depth)
    hidden = tuple(int(h) for h in rng.integers(6, 14, size=depth))
    checks = random_check(rng, hidden=hidden, dropout=dropout, label_smoothing=label_smoothing, batch=9)
    for check in checks:
        assert check.relative_error < TOLERANCE, check


def test_dropout_is_inverted_seeded_and_leaves_its_input_alone():
    x = np.ones((2000, 50), np.float32)
    out = Dropout(0.4, np.random.default_rng(3)).forward(x).copy()
    assert abs((out == 0).mean() - 0.4) < 0.01 and abs(out.mean() - 1.0) < 0.02  # scaled by 1 / 0.6
    assert np.allclose(np.unique(out), [0.0, 1 / 0.6]) and out.dtype == np.float32
    again = Dropout(0.4, np.random.default_rng(3)).forward(x)
    assert (again == out).all() and (x == 1).all()
    layer = Dropout(0.4, np.random.default_rng(4))
    kept = layer.forward(x) != 0
    dout = np.full_like(x, 2.0)
    dx = layer.backward(dout)
    assert (dx[~kept] == 0).all() and np.allclose(dx[kept], 2 / 0.6) and (dout == 2).all()
    assert (Dropout(0.0, np.random.default_rng(0)).forward(x) == x).all()
    for rate in (-0.1, 1.0):
        with pytest.raises(ValueError):
            Dropout(rate, np.random.default_rng(0))


def test_label_smoothing_is_cross_entropy_against_smoothed_targets():
    rng = np.random.default_rng(5)
    logits, labels, smoothing = rng.standard_normal((6, 4)), rng.integers(0, 4, 6), 0.2
    smoothed = np.full((6, 4), smoothing / 4) + (1 - smoothing) * np.eye(4)[labels]
    by_labels, by_targets = SoftmaxCrossEntropy(smoothing), SoftmaxCrossEntropy()
    assert by_labels.forward(logits, labels) == pytest.approx(by_targets.forward(logits, smoothed))
    assert np.allclose(by_labels.backward(), by_targets.backward())
    with pytest.raises(ValueError):
        SoftmaxCrossEntropy(1.0)


def test_inference_has_no_dropout():
    spec = ModelSpec(input_size=12, hidden=(16, 8), num_classes=3, class_names=("a", "b", "c"))
    network = MLP.initialize(spec, np.random.default_rng(1))
    x = np.random.default_rng(2).standard_normal((5, 12)).astype(np.float32)
    plain = network.predict_proba(x).copy()
    network.regularize(dropout=0.5, label_smoothing=0.1, rng=np.random.default_rng(3))
    assert sum(type(layer).__name__ == "Dropout" for layer in network.layers) == 2
    assert np.array_equal(network.predict_proba(x), plain)
    first = network.forward(x).copy()
    assert not np.array_equal(first, network.forward(x))  # training draws new masks
    network.regularize(dropout=0.0, label_smoothing=0.0, rng=None)
    assert all(type(layer).__name__ != "Dropout" for layer in network.layers)


def test_the_average_follows_its_definition_and_is_what_training_leaves():
    params = {"W1": np.zeros(3), "b1": np.zeros(1)}
    grads = {"W1": np.full(3, -1.0), "b1": np.zeros(1)}
    optimizer = make_optimizer("sgd", 1.0, average=0.5)
    expected = None
    for step in range(1, 6):
        optimizer.step(params, grads)
        decay = min(0.5, (1 + step) / (10 + step))
        expected = params["W1"].copy() if expected is None else decay * expected + (1 - decay) * params["W1"]
        assert np.allclose(optimizer.averages["W1"], expected)
    with optimizer.averaged_weights(params):
        assert np.allclose(params["W1"], expected)
    assert np.allclose(params["W1"], 5.0)  # the last weights again
    with pytest.raises(ValueError):
        make_optimizer("adam", 1e-3, average=1.0)

    rng = np.random.default_rng(7)
    spec = ModelSpec(input_size=6, hidden=(8,), num_classes=2, class_names=("a", "b"))
    network = MLP.initialize(spec, rng)
    x, y = rng.standard_normal((64, 6)).astype(np.float32), rng.integers(0, 2, 64)
    averaging = make_optimizer("adam", 1e-2, average=0.9)
    fit(network, averaging, x, y, epochs=2, batch_size=16, rng=rng, prefetch=0)
    assert all(np.array_equal(network.params[key], averaging.averages[key]) for key in network.params)
