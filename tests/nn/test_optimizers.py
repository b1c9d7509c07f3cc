import numpy as np
import pytest

from service.nn.optimizers import SGD, Adam, Momentum, make_optimizer


def _problem(rng, dtype=np.float64):
    params = {"W1": rng.standard_normal((5, 4)).astype(dtype), "b1": rng.standard_normal(4).astype(dtype)}
    grads_seq = [{k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()} for _ in range(6)]
    return params, grads_seq


def test_adam_matches_the_textbook_update():
    rng = np.random.default_rng(0)
    params, grads_seq = _problem(rng)
    reference = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    opt = Adam(lr, b1, b2, eps)
    for t, grads in enumerate(grads_seq, start=1):
        opt.step(params, grads)
        for k, g in grads.items():
            m[k] = b1 * m[k] + (1 - b1) * g
            v2[k] = b2 * v2[k] + (1 - b2) * g * g
            m_hat, v_hat = m[k] / (1 - b1**t), v2[k] / (1 - b2**t)
            reference[k] -= lr * m_hat / (np.sqrt(v_hat) + eps)
        for k in params:
            np.testing.assert_allclose(params[k], reference[k], rtol=1e-10, atol=1e-12)


def test_momentum_and_sgd_match_their_formulas():
    rng = np.random.default_rng(1)
    params, grads_seq = _problem(rng)
    plain = {k: v.copy() for k, v in params.items()}
    ref_plain = {k: v.copy() for k, v in params.items()}
    ref = {k: v.copy() for k, v in params.items()}
    velocity = {k: np.zeros_like(v) for k, v in params.items()}
    momentum, sgd = Momentum(0.1, momentum=0.8), SGD(0.1)
    for grads in grads_seq:
        momentum.step(params, grads)
        sgd.step(plain, grads)
        for k, g in grads.items():
            velocity[k] = 0.8 * velocity[k] - 0.1 * g
            ref[k] += velocity[k]
            ref_plain[k] -= 0.1 * g
    for k in params:
        np.testing.assert_allclose(params[k], ref[k], rtol=1e-12)
        np.testing.assert_allclose(plain[k], ref_plain[k], rtol=1e-12)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_weight_decay_shrinks_weights_but_not_biases(name):
    params = {"W1": np.ones((2, 2)), "b1": np.ones(2)}
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    make_optimizer(name, 0.1, weight_decay=0.5).step(params, zero)
    np.testing.assert_allclose(params["W1"], 0.95)
    np.testing.assert_allclose(params["b1"], 1.0)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_float32_stays_float32_in_place(name):
    rng = np.random.default_rng(2)
    params, grads_seq = _problem(rng, np.float32)
    arrays = {k: id(v) for k, v in params.items()}
    opt = make_optimizer(name, 0.01)
    for grads in grads_seq:
        opt.step(params, grads)
    assert {k: id(v) for k, v in params.items()} == arrays
    assert all(v.dtype == np.float32 for v in params.values())
    assert set(opt._scratch) == set(params)


def test_state_is_keyed_like_the_parameters():
    params = {"W1": np.ones((2, 2)), "b1": np.ones(2)}
    opt = Adam(0.1)
    opt.step(params, {k: np.ones_like(v) for k, v in params.items()})
    assert set(opt.state) == {"m", "v"}
    assert set(opt.state["m"]) == set(params) == set(opt.state["v"])


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        SGD(0.0)
    with pytest.raises(ValueError):
        make_optimizer("rmsprop", 0.1)
    with pytest.raises(ValueError, match="shape"):
        SGD(0.1).step({"W1": np.ones(2)}, {"W1": np.ones(3)})
