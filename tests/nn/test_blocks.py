import numpy as np
import pytest

from service.nn import MLP, ModelSpec
from service.nn.blocks import block_diagonal, diagonal_blocks, multiply_blocks
from service.nn.ensemble import merge_members
from service.nn.optimizers import SGD


def _random_blocks(rng, shapes):
    return [rng.standard_normal(shape).astype(np.float32) for shape in shapes]


@pytest.mark.parametrize("shapes", [[(5, 3), (4, 6)], [(512, 256)] * 3, [(1, 2), (3, 1), (2, 2), (4, 3)]])
def test_the_blocks_of_a_block_diagonal_matrix_are_found(shapes):
    blocks = _random_blocks(np.random.default_rng(0), shapes)
    found = diagonal_blocks(block_diagonal(blocks, np.dtype(np.float32)))
    assert [(rows.stop - rows.start, cols.stop - cols.start) for rows, cols in found] == shapes


def test_a_matrix_that_does_not_split_well_is_left_dense():
    rng = np.random.default_rng(1)
    assert diagonal_blocks(rng.standard_normal((6, 4))) is None  # one block
    assert diagonal_blocks(np.zeros((6, 4))) is None  # nothing to multiply at all
    assert diagonal_blocks(np.eye(40)) is None  # 40 blocks of one: more calls than they save
    lopsided = block_diagonal(_random_blocks(rng, [(20, 20), (1, 1)]), np.dtype(np.float32))
    assert diagonal_blocks(lopsided) is None  # saves less than a quarter
    assert diagonal_blocks(np.ones((1, 5))) is None and diagonal_blocks(np.ones((5, 1))) is None


def test_zero_rows_and_columns_inside_blocks_still_give_the_product():
    rng = np.random.default_rng(2)
    weights = block_diagonal(_random_blocks(rng, [(6, 5), (4, 7), (5, 4)]), np.dtype(np.float32))
    weights[[0, 7, 14], :] = 0  # units whose weights are all zero, at a block's edge and inside
    weights[:, [0, 6, 15]] = 0
    found = diagonal_blocks(weights)
    assert found is not None and len(found) >= 3
    blocks = [(rows, cols, weights[rows, cols]) for rows, cols in found]
    x = rng.standard_normal((9, 15)).astype(np.float32)
    np.testing.assert_allclose(multiply_blocks(x, blocks, 16), x @ weights, rtol=1e-5, atol=1e-5)
    for rows, cols in found:  # nothing outside the blocks is non-zero
        weights[rows, cols] = 0
    assert not weights.any()


@pytest.mark.parametrize("batch", [1, 7])
def test_a_frozen_ensemble_gives_the_logits_of_the_dense_one(batch):
    rng = np.random.default_rng(3)
    members = [MLP.initialize(ModelSpec(input_size=20, hidden=(16, 8), num_classes=5), rng) for _ in range(3)]
    merged = merge_members(members)
    dense = merged.astype(np.float32)
    x = merged.normalize(rng.integers(0, 256, (batch, 20)))
    merged.freeze()
    assert sorted(merged._blocks) == [2]  # the first and output layers are dense
    np.testing.assert_allclose(merged.logits(x.copy()), dense.logits(x.copy()), rtol=1e-5, atol=1e-6)
    assert merged.test_prediction() is None


def test_a_frozen_network_refuses_to_be_trained():
    network = MLP.initialize(ModelSpec(input_size=6, hidden=(4,), num_classes=3), np.random.default_rng(4))
    x = network.normalize(np.full((2, 6), 100.0))
    network.freeze().gradient(x, np.array([0, 1]))  # its gradient is fine: explanations need it
    with pytest.raises(ValueError, match="read-only"):
        SGD(lr=0.1).step(network.params, network.grads)
