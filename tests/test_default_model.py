"""The shipped default model: it classifies real digits and the README's command reproduces it."""

import numpy as np
import pytest

from service.cli import main
from service.data import load_dataset
from service.settings import Settings
from service.store import ModelStore
from service.training import TrainingConfig, split_indices
from tests.conftest import REPO


@pytest.fixture(scope="module")
def shipped():
    network, meta = ModelStore(REPO / "model_store").load()
    return network, meta


def _held_out(meta, mnist5k_dir):
    dataset = load_dataset("mnist", mnist5k_dir)
    _, val_idx = split_indices(TrainingConfig(**meta["training"]), dataset.train_y)
    return dataset.train_x[val_idx], dataset.train_y[val_idx]


def test_default_model_is_mnist_with_default_settings(shipped):
    _, meta = shipped
    assert (meta["name"], meta["version"]) == ("mnist", 1)
    assert meta["training"] == TrainingConfig().model_dump(mode="json")


@pytest.mark.slow
def test_default_model_classifies_held_out_real_digits(shipped, mnist5k_dir):
    network, meta = shipped
    x, y = _held_out(meta, mnist5k_dir)
    accuracy = network.accuracy(network.normalize(x), y)
    assert accuracy >= 0.96
    assert accuracy == pytest.approx(meta["metrics"]["validation_accuracy"])


@pytest.mark.slow
def test_readme_command_reproduces_the_default_model(shipped, mnist5k_dir, tmp_path):
    network, meta = shipped
    store_dir = tmp_path / "store"
    argv = ["train", "--data-dir", str(mnist5k_dir), "--model", "mnist", "--set-default", "--json"]
    assert main([*argv, "--model-store", str(store_dir)], Settings()) == 0
    retrained, new_meta = ModelStore(store_dir).load()
    x, _ = _held_out(meta, mnist5k_dir)
    agree = np.mean(
        retrained.logits(retrained.normalize(x)).argmax(1) == network.logits(network.normalize(x)).argmax(1)
    )
    # Bit-identical on the same CPU and BLAS; other kernels round differently, hence agreement.
    assert agree >= 0.98
    assert new_meta["training"] == meta["training"]
