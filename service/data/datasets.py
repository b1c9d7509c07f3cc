"""Named MNIST-style datasets: where their IDX files live and how to load them.

A dataset is looked for, in order, in the torchvision layout ``ROOT/<Folder>/raw/``, in
``ROOT/<name>/``, in ``ROOT`` itself (a plain folder of IDX files), and in system folders such as
the one Debian's ``dataset-fashion-mnist`` package installs. Test files are optional (a folder
may hold only a training set, like mnist-5k).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.data.idx import read_idx_pair
from service.errors import DatasetError, DatasetNotFound

log = logging.getLogger(__name__)

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    torchvision_class: str  # also torchvision's folder name under the root
    mirrors: tuple[str, ...]
    md5: dict[str, str]  # published .gz file name -> md5
    class_names: tuple[str, ...]
    system_dirs: tuple[Path, ...] = ()
    install_hint: str = ""


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        torchvision_class="MNIST",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        md5={
            f"{TRAIN_IMAGES}.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            f"{TRAIN_LABELS}.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            f"{TEST_IMAGES}.gz": "9fb629c4189551a2d022fa330f9573f3",
            f"{TEST_LABELS}.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        class_names=tuple(str(d) for d in range(10)),
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        torchvision_class="FashionMNIST",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        md5={
            f"{TRAIN_IMAGES}.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            f"{TRAIN_LABELS}.gz": "25c81989df183df01b3e8a0aad5dffbe",
            f"{TEST_IMAGES}.gz": "bef4ecab320f06d8554ea6380940ec79",
            f"{TEST_LABELS}.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
        install_hint="on Debian: apt-get install dataset-fashion-mnist",
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetNotFound(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


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


def candidate_dirs(info: DatasetInfo, root: Path) -> list[Path]:
    return [root / info.torchvision_class / "raw", root / info.name, root, *info.system_dirs]


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def locate(info: DatasetInfo, root: Path) -> Path | None:
    """The first candidate folder that holds a training set, or None."""
    for folder in candidate_dirs(info, root):
        if _find(folder, TRAIN_IMAGES) and _find(folder, TRAIN_LABELS):
            return folder
    return None


def _check_labels(path: Path, labels: np.ndarray, num_classes: int) -> None:
    if labels.size and int(labels.max()) >= num_classes:
        raise DatasetError(f"{path}: label {int(labels.max())} out of range for {num_classes} classes")


def load_folder(info: DatasetInfo, folder: Path) -> Dataset:
    images_path, labels_path = _find(folder, TRAIN_IMAGES), _find(folder, TRAIN_LABELS)
    if images_path is None or labels_path is None:
        raise DatasetNotFound(f"{folder}: no {TRAIN_IMAGES}[.gz] and {TRAIN_LABELS}[.gz]")
    train_x, train_y = read_idx_pair(images_path, labels_path)
    _check_labels(labels_path, train_y, len(info.class_names))
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
        from service.data.download import download_dataset

        download_dataset(info, root, mirrors=mirrors)
        folder = locate(info, root)
    if folder is None:
        looked = "\n  ".join(str(d) for d in candidate_dirs(info, root))
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
