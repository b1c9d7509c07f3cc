"""The catalogue: one place says where a dataset's files may be, for finding and downloading."""

from pathlib import Path

import pytest

from service.data import DATASETS, dataset_info
from service.errors import DatasetNotFound


def test_the_torchvision_layout_comes_first_and_is_where_downloads_go():
    info = dataset_info("fashion-mnist")
    root = Path("/data")
    assert info.torchvision_dir(root) == Path("/data/FashionMNIST/raw")
    assert info.candidate_dirs(root) == [
        Path("/data/FashionMNIST/raw"),
        Path("/data/fashion-mnist"),
        root,
        Path("/usr/share/datasets/fashion-mnist"),
    ]


def test_every_dataset_publishes_four_checksums_and_ten_classes():
    for info in DATASETS.values():
        assert len(info.md5) == 4 and all(len(digest) == 32 for digest in info.md5.values())
        assert len(info.class_names) == 10


def test_an_unknown_name_says_which_exist():
    with pytest.raises(DatasetNotFound, match="known: mnist, fashion-mnist"):
        dataset_info("cifar")
