import numpy as np
import pytest

from service.nn import MLP, ModelSpec, Normalization
from service.nn.ensemble import merge_members

NORMALIZATION = Normalization(mean=0.1, std=0.3)


def _members(hidden_sizes, seed=0, normalization=NORMALIZATION):
    rng = np.random.default_rng(seed)
    return [
        MLP.initialize(
            ModelSpec(input_size=12, hidden=hidden, num_classes=4, normalization=normalization), rng
        )
        for hidden in hidden_sizes
    ]


@pytest.mark.parametrize("hidden_sizes", [[(8,), (8,)], [(8, 5), (8, 5), (8, 5)], [(6, 3, 4), (9, 2, 5)]])
def test_the_merged_network_computes_the_mean_of_its_members_logits(hidden_sizes):
    members = _members(hidden_sizes)
    for member in members:  # non-zero biases, so that their placement is checked too
        for key, value in member.params.items():
            if key.startswith("b"):
                value[:] = np.random.default_rng(len(key)).standard_normal(value.shape)
    merged = merge_members(members)
    x = merged.normalize(np.random.default_rng(1).integers(0, 256, (7, 12)))
    expected = np.mean([member.logits(x.copy()) for member in members], axis=0)
    np.testing.assert_allclose(merged.logits(x.copy()), expected, rtol=1e-5, atol=1e-6)
    assert merged.spec.hidden == tuple(np.sum([list(h) for h in hidden_sizes], axis=0))
    assert merged.spec.normalization == members[0].spec.normalization
    assert merged.dtype == np.float32


def test_a_member_sees_only_its_own_units():
    members = _members([(3, 2), (3, 2)])
    merged = merge_members(members)
    w2 = merged.params["W2"]
    assert w2.shape == (6, 4)
    assert not w2[:3, 2:].any() and not w2[3:, :2].any()
    np.testing.assert_array_equal(w2[3:, 2:], members[1].params["W2"])


def test_members_that_cannot_be_merged_are_refused():
    with pytest.raises(ValueError, match="at least one"):
        merge_members([])
    deep, shallow = _members([(4, 4), (4,)])
    with pytest.raises(ValueError, match="share input, classes, normalization and depth"):
        merge_members([deep, shallow])
    other = _members([(4, 4)], normalization=Normalization(mean=0.2, std=0.3))[0]
    with pytest.raises(ValueError, match="share"):
        merge_members([deep, other])
