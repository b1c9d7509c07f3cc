import numpy as np
import pytest

from service.data import dataset_info, load_dataset, stratified_split, write_idx
from service.data.datasets import locate
from service.errors import DatasetError, DatasetNotFound


def _training_files(folder, n=20, label_max=9):
    folder.mkdir(parents=True)
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((n, 28, 28), dtype=np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % (label_max + 1))
    return folder


def test_torchvision_layout_is_found_first(tmp_path):
    _training_files(tmp_path / "MNIST" / "raw")
    _training_files(tmp_path / "mnist")
    assert locate(dataset_info("mnist"), tmp_path) == tmp_path / "MNIST" / "raw"


@pytest.mark.parametrize("sub", ["mnist", "."])
def test_named_subfolder_and_plain_folder(tmp_path, sub):
    folder = _training_files(tmp_path / sub) if sub != "." else _training_files(tmp_path / "plain")
    root = tmp_path if sub != "." else folder
    data = load_dataset("mnist", root)
    assert data.source == folder
    assert data.train_x.shape == (20, 784) and data.test_x is None


def test_fashion_uses_its_own_folder_names(tmp_path):
    _training_files(tmp_path / "FashionMNIST" / "raw")
    data = load_dataset("fashion-mnist", tmp_path)
    assert data.info.class_names[0] == "T-shirt/top"


def test_real_mnist_subset_has_no_test_split(mnist5k_dir):
    data = load_dataset("mnist", mnist5k_dir)
    assert data.train_x.shape == (5000, 784) and data.test_x is None


def test_missing_data_says_where_it_looked_and_how_to_fix(tmp_path):
    with pytest.raises(DatasetNotFound) as info:
        load_dataset("mnist", tmp_path / "data")
    message = str(info.value)
    assert str(tmp_path / "data" / "MNIST" / "raw") in message
    assert "--data-dir" in message and "--download" in message


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(DatasetNotFound, match="unknown dataset 'cifar'; known: mnist, fashion-mnist"):
        load_dataset("cifar", tmp_path)


def test_label_out_of_range_is_refused(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((2, 28, 28), dtype=np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte", np.array([3, 12], dtype=np.uint8))
    with pytest.raises(DatasetError, match="label 12 out of range"):
        load_dataset("mnist", tmp_path)


def test_half_a_test_split_is_ignored_with_a_note(tmp_path):
    folder = _training_files(tmp_path / "mnist")
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), dtype=np.uint8))
    data = load_dataset("mnist", tmp_path)
    assert data.test_x is None and "both be present" in data.notes[0]


def test_stratified_split_keeps_class_balance_and_is_reproducible():
    labels = np.repeat(np.arange(10), 50)  # sorted by class, like mnist-5k
    train, val = stratified_split(labels, 0.1, np.random.default_rng(0))
    assert np.bincount(labels[val]).tolist() == [5] * 10
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 500
    again, _ = stratified_split(labels, 0.1, np.random.default_rng(0))
    np.testing.assert_array_equal(train, again)
    with pytest.raises(ValueError):
        stratified_split(labels, 1.0, np.random.default_rng(0))
