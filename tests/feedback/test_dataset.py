"""Corrections exported as the ``feedback`` dataset: IDX files the loaders read, every fifth
correction held out as the test files, switched in one rename, old exports forgotten."""

import numpy as np
import pytest

from service.data import read_idx_pair
from service.errors import DatasetNotFound
from service.feedback import dataset
from service.feedback.store import FeedbackStore


def test_the_export_is_idx_files_with_a_stable_held_out_part(tmp_path):
    store = FeedbackStore(tmp_path, max_examples=100, per_minute=100)
    with pytest.raises(DatasetNotFound, match="no corrections"):
        dataset.export(store, tmp_path)
    for i in range(12):
        store.correct(np.full(784, i, np.uint8), i % 10, "10.0.0.1")
    first = dataset.export(store, tmp_path)
    assert (tmp_path / "feedback").resolve() == first.resolve()
    train_x, train_y = read_idx_pair(
        tmp_path / "feedback" / "train-images-idx3-ubyte", tmp_path / "feedback" / "train-labels-idx1-ubyte"
    )
    test_x, test_y = read_idx_pair(
        tmp_path / "feedback" / "t10k-images-idx3-ubyte", tmp_path / "feedback" / "t10k-labels-idx1-ubyte"
    )
    assert test_y.tolist() == [4, 9] and test_x[:, 0].tolist() == [4, 9]  # ids 5 and 10
    assert len(train_y) == 10 and 4 not in train_x[:, 0].tolist()
    for i in range(4):
        store.correct(np.full(784, 100 + i, np.uint8), 3, "10.0.0.1")
        latest = dataset.export(store, tmp_path)
    assert (tmp_path / "feedback").resolve() == latest.resolve()
    assert read_idx_pair(latest / "t10k-images-idx3-ubyte", latest / "t10k-labels-idx1-ubyte")[
        1
    ].tolist() == [
        4,
        9,
        3,
    ]  # id 15 joins; 5 and 10 stay held out
    assert len(list((tmp_path / ".feedback").glob("export-*"))) == dataset.KEPT_EXPORTS
    assert not first.exists()


def test_mnist_plus_feedback_adds_the_training_corrections_and_holds_out_the_rest(tiny_dataset_dir):
    store = FeedbackStore(tiny_dataset_dir, max_examples=100, per_minute=100)
    with pytest.raises(DatasetNotFound, match="no corrections"):
        dataset.load_training_data("mnist+feedback", tiny_dataset_dir, store)
    for _ in range(10):
        store.correct(np.full(784, 200, np.uint8), 7, "10.0.0.1")
    data = dataset.load_training_data("mnist+feedback", tiny_dataset_dir, store)
    assert len(data.train_y) == 608 and data.corrections.sum() == 8 and not data.corrections[:600].any()
    assert data.train_y[600:].tolist() == [7] * 8 and (data.train_x[600:] == 200).all()
    assert data.held_out_corrections[1].tolist() == [7, 7] and len(data.test_y) == 200  # MNIST's test split
    assert "8 corrections to train on and 2 held out" in data.notes[-1]
    plain = dataset.load_training_data("mnist", tiny_dataset_dir, store)
    assert plain.corrections is None and plain.held_out_corrections is None and len(plain.train_y) == 600
    with pytest.raises(DatasetNotFound, match="NAME\\+feedback"):
        dataset.load_training_data("mnist+other", tiny_dataset_dir, store)
