"""Finding and loading the catalogue's datasets (``service.data.catalogue``).

A dataset is looked for, in order, in the torchvision layout ``ROOT/<Folder>/raw/``, in
``ROOT/<name>/``, in ``ROOT`` itself (a plain folder of IDX files), and in system folders such as
the one Debian's ``dataset-fashion-mnist`` package installs. Test files are optional (a folder
may hold only a training set, like mnist-5k).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.data.catalogue import (
    DATASETS,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    DatasetInfo,
    dataset_info,
)
from service.data.download import download_dataset
from service.data.idx import read_idx_pair
from service.errors import DatasetError, DatasetNotFound

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """Pixels as uint8 (N, 784), labels as int64 (N,); the test split may be absent."""

    info: DatasetInfo
    source: Path
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray | None = None
    test_y: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    # With people's corrections added (``service.feedback.dataset``): which training rows are
    # corrections (N,), and the held-out corrections, pixels (M, 784) and labels (M,).
    corrections: np.ndarray | None = None
    held_out_corrections: tuple[np.ndarray, np.ndarray] | None = None

    def fingerprint(self) -> str:
        """sha256 of the training images and labels: which data a model's split was drawn from."""
        digest = hashlib.sha256(self.train_x.tobytes())
        digest.update(self.train_y.astype(np.uint8).tobytes())
        return digest.hexdigest()


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def locate(info: DatasetInfo, root: Path) -> Path | None:
    """The first candidate folder that holds a training set, or None."""
    for folder in info.candidate_dirs(root):
        if _find(folder, TRAIN_IMAGES) and _find(folder, TRAIN_LABELS):
            return folder
    return None


IDENTIFY_FROM = 1000  # images: fewer say too little about what they show


def _check_identity(info: DatasetInfo, folder: Path, images: np.ndarray) -> None:
    """A dataset is what its files hold, not what was asked for: the training images' mean pixel
    must be nearer the catalogue's figure for ``info`` than for any other dataset (MNIST's digits
    average 33 of 255, Fashion-MNIST's clothes 73), or a folder of digits could train a model
    labelled T-shirt ... Ankle boot."""
    if len(images) < IDENTIFY_FROM:
        return
    mean = float(images.mean(dtype=np.float64))
    nearest = min(DATASETS.values(), key=lambda other: abs(other.mean_pixel - mean))
    if nearest.name != info.name:
        raise DatasetError(
            f"{folder} does not hold {info.name}: its images look like {nearest.name}'s (mean pixel "
            f"{mean:.1f}; {info.name}'s is {info.mean_pixel:.1f}, "
            f"{nearest.name}'s {nearest.mean_pixel:.1f}); "
            f"point --data-dir (or BACKPROP_DATA_DIR) at {info.name}'s files"
        )


def _check_labels(path: Path, labels: np.ndarray, num_classes: int) -> None:
    if labels.size and int(labels.max()) >= num_classes:
        raise DatasetError(f"{path}: label {int(labels.max())} out of range for {num_classes} classes")


def load_folder(info: DatasetInfo, folder: Path) -> Dataset:
    images_path, labels_path = _find(folder, TRAIN_IMAGES), _find(folder, TRAIN_LABELS)
    if images_path is None or labels_path is None:
        raise DatasetNotFound(f"{folder}: no {TRAIN_IMAGES}[.gz] and {TRAIN_LABELS}[.gz]")
    train_x, train_y = read_idx_pair(images_path, labels_path)
    _check_labels(labels_path, train_y, len(info.class_names))
    _check_identity(info, folder, train_x)
    dataset = Dataset(info, folder, train_x, train_y.astype(np.int64))
    test_images, test_labels = _find(folder, TEST_IMAGES), _find(folder, TEST_LABELS)
    if test_images and test_labels:
        test_x, test_y = read_idx_pair(test_images, test_labels)
        if test_x.shape[1] != train_x.shape[1]:
            raise DatasetError(
                f"{test_images}: images of {test_x.shape[1]} pixels, training has {train_x.shape[1]}"
            )
        _check_labels(test_labels, test_y, len(info.class_names))
        dataset.test_x, dataset.test_y = test_x, test_y.astype(np.int64)
    elif test_images or test_labels:
        dataset.notes.append(f"{folder}: test images and labels must both be present; test split ignored")
    return dataset


def load_dataset(
    name: str,
    root: str | Path,
    *,
    download: bool = False,
    mirrors: tuple[str, ...] | None = None,
) -> Dataset:
    """Find and read dataset ``name`` under ``root``, downloading it there when allowed."""
    info = dataset_info(name)
    root = Path(root)
    folder = locate(info, root)
    if folder is None and download:
        download_dataset(info, root, mirrors=mirrors)
        folder = locate(info, root)
    if folder is None:
        looked = "\n  ".join(str(d) for d in info.candidate_dirs(root))
        hints = [
            "point BACKPROP_DATA_DIR (or backprop train --data-dir) at a folder holding the IDX files",
            "or allow downloads (BACKPROP_ALLOW_DOWNLOAD=1 for jobs, --download for backprop train)",
        ]
        if info.install_hint:
            hints.append(info.install_hint)
        raise DatasetNotFound(
            f"dataset {name!r} not found; looked for {TRAIN_IMAGES}[.gz] in:\n  {looked}\n" + "; ".join(hints)
        )
    log.info("loading dataset %s from %s", name, folder)
    return load_folder(info, folder)
