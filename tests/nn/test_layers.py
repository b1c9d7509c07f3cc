import numpy as np
import pytest

from service.nn.gradcheck import numerical_gradient, relative_error
from service.nn.layers import Linear, ReLU, SoftmaxCrossEntropy, softmax

TOL = 1e-6


def _upstream_loss(layer, x, dout):
    """Scalar sum(forward(x) * dout): its gradient w.r.t. anything is what backward(dout) gives."""
    return lambda: float(np.sum(layer.forward(x) * dout))


@pytest.mark.parametrize("shape", [(3, 4, 5), (7, 1, 2), (1, 6, 3)])
def test_linear_gradients_match_numerical(shape):
    rng = np.random.default_rng(sum(shape))
    n, fan_in, fan_out = shape
    layer = Linear(rng.standard_normal((fan_in, fan_out)), rng.standard_normal(fan_out))
    x = rng.standard_normal((n, fan_in))
    dout = rng.standard_normal((n, fan_out))
    layer.forward(x)
    dx = layer.backward(dout).copy()
    grads = {k: v.copy() for k, v in layer.grads.items()}
    f = _upstream_loss(layer, x, dout)
    assert relative_error(dx, numerical_gradient(f, x)) < TOL
    for key in ("W", "b"):
        assert relative_error(grads[key], numerical_gradient(f, layer.params[key])) < TOL


def test_relu_gradient_matches_numerical():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 9))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink, where the derivative is undefined
    dout = rng.standard_normal((6, 9))
    layer = ReLU()
    layer.forward(x)
    dx = layer.backward(dout).copy()
    assert relative_error(dx, numerical_gradient(_upstream_loss(layer, x, dout), x)) < TOL


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_passes_positive_inputs_and_their_gradients_only(dtype):
    x = np.array([[-2.0, -0.0, 0.0, 0.5, 3.0]], dtype=dtype)
    layer = ReLU()
    out = layer.forward(x)
    assert out.dtype == dtype and out.tolist() == [[0.0, 0.0, 0.0, 0.5, 3.0]]
    dx = layer.backward(np.full_like(x, 5.0))
    assert dx.dtype == dtype and dx.tolist() == [[0.0, 0.0, 0.0, 5.0, 5.0]]


@pytest.mark.parametrize("one_hot", [False, True])
def test_softmax_cross_entropy_gradient_matches_numerical(one_hot):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((5, 4)) * 3
    labels = rng.integers(0, 4, 5)
    targets = np.eye(4)[labels] if one_hot else labels
    layer = SoftmaxCrossEntropy()
    layer.forward(logits, targets)
    dx = layer.backward()
    numeric = numerical_gradient(lambda: layer.forward(logits, targets), logits)
    assert relative_error(dx, numeric) < TOL


def test_labels_and_one_hot_give_the_same_loss_and_gradient():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((8, 10))
    labels = rng.integers(0, 10, 8)
    a, b = SoftmaxCrossEntropy(), SoftmaxCrossEntropy()
    assert a.forward(logits, labels) == pytest.approx(b.forward(logits, np.eye(10)[labels]), rel=1e-12)
    np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-12)


def test_loss_is_finite_and_exact_for_huge_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 5000.0, 0.0]])
    layer = SoftmaxCrossEntropy()
    loss = layer.forward(logits, np.array([2, 1]))
    # Row 1 picks a logit 2000 below the max: -log softmax = 2000; row 2 is certain: 0.
    assert loss == pytest.approx(1000.0)
    assert np.all(np.isfinite(layer.backward()))
    np.testing.assert_allclose(softmax(logits).sum(axis=1), 1.0)


def test_backward_never_mutates_its_input_nor_the_parameters():
    rng = np.random.default_rng(3)
    linear = Linear(rng.standard_normal((4, 3)), rng.standard_normal(3))
    relu = ReLU()
    x = rng.standard_normal((5, 4))
    out = relu.forward(linear.forward(x))
    dout = rng.standard_normal(out.shape)
    saved = dout.copy(), linear.params["W"].copy(), linear.params["b"].copy()
    linear.backward(relu.backward(dout))
    np.testing.assert_array_equal(dout, saved[0])
    np.testing.assert_array_equal(linear.params["W"], saved[1])
    np.testing.assert_array_equal(linear.params["b"], saved[2])


def test_first_layer_can_skip_the_input_gradient():
    rng = np.random.default_rng(4)
    layer = Linear(rng.standard_normal((4, 3)), np.zeros(3))
    layer.needs_input_grad = False
    layer.forward(rng.standard_normal((2, 4)))
    assert layer.backward(np.ones((2, 3))) is None
    np.testing.assert_allclose(layer.grads["b"], [2.0, 2.0, 2.0])


def test_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError):
        ReLU().backward(np.ones((1, 1)))
    with pytest.raises(RuntimeError):
        SoftmaxCrossEntropy().backward()
