"""The gradient check: backprop agrees with central differences in float64 to 1e-6.

Parametrized over network depth (1-3 hidden layers of random sizes), label vs one-hot targets,
and each optimizer after a few steps (so the check also runs away from the initialization).
"""

import numpy as np
import pytest

from service.nn import MLP, ModelSpec, make_optimizer
from service.nn.gradcheck import check_network, random_check

TOLERANCE = 1e-6


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("one_hot", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_parameter_passes_the_gradient_check(depth, one_hot, seed):
    rng = np.random.default_rng(100 * depth + seed)
    hidden = tuple(int(h) for h in rng.integers(3, 15, size=depth))
    input_size, classes = int(rng.integers(4, 20)), int(rng.integers(2, 8))
    checks = random_check(rng, input_size=input_size, hidden=hidden, num_classes=classes, one_hot=one_hot)
    assert [c.name for c in checks] == [f"{p}{i}" for i in range(1, depth + 2) for p in "Wb"]
    for check in checks:
        assert check.relative_error < TOLERANCE, check


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_gradients_stay_exact_while_each_optimizer_trains(optimizer, depth):
    rng = np.random.default_rng(depth)
    spec = ModelSpec(input_size=10, hidden=(8,) * depth, num_classes=4, class_names=tuple("abcd"))
    network = MLP.initialize(spec, rng, dtype=np.float64)
    x = rng.standard_normal((16, 10))
    y = rng.integers(0, 4, 16)
    opt = make_optimizer(optimizer, 0.05 if optimizer != "adam" else 0.01)
    first_loss, _ = network.gradient(x, y)
    for _ in range(15):
        network.gradient(x, y)
        opt.step(network.params, network.grads)
    assert network.loss(x, y) < first_loss
    for check in check_network(network, x, y):
        assert check.relative_error < TOLERANCE, check


def test_check_does_not_touch_the_network_it_checks():
    rng = np.random.default_rng(5)
    network = MLP.initialize(
        ModelSpec(input_size=6, hidden=(5,), num_classes=3, class_names=tuple("abc")), rng
    )
    before = {k: v.copy() for k, v in network.params.items()}
    check_network(network, rng.standard_normal((4, 6)), rng.integers(0, 3, 4))
    for key, value in network.params.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, before[key])


def test_a_wrong_gradient_is_caught(monkeypatch):
    rng = np.random.default_rng(6)
    network = MLP.initialize(
        ModelSpec(input_size=6, hidden=(5,), num_classes=3, class_names=tuple("abc")), rng, dtype=np.float64
    )
    x, y = rng.standard_normal((4, 6)), rng.integers(0, 3, 4)
    original = network.layers[1].backward
    network.layers[1].backward = lambda dout: original(dout) * 1.01  # a 1% error in ReLU's backward
    monkeypatch.setattr(MLP, "astype", lambda self, dtype: self)  # check this network, bug included
    worst = max(c.relative_error for c in check_network(network, x, y))
    assert worst > 1e-3
