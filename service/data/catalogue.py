"""The datasets this service knows: names, file names, published checksums, mirrors, and where
their files may live. Finding and loading them is ``service.data.datasets``; fetching them is
``service.data.download``; both read this, and nothing here reads files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.errors import DatasetNotFound

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    torchvision_class: str  # also torchvision's folder name under the root
    mirrors: tuple[str, ...]
    md5: dict[str, str]  # published .gz file name -> md5
    class_names: tuple[str, ...]
    mean_pixel: float  # of the official training images, 0-255: tells the datasets' files apart
    system_dirs: tuple[Path, ...] = ()
    install_hint: str = ""

    def torchvision_dir(self, root: Path) -> Path:
        """Where torchvision keeps the raw files under ``root``, and where we download to."""
        return root / self.torchvision_class / "raw"

    def candidate_dirs(self, root: Path) -> list[Path]:
        """The folders looked in, in order: torchvision's layout, ``root/<name>``, ``root`` itself,
        then system folders (such as Debian's package's)."""
        return [self.torchvision_dir(root), root / self.name, root, *self.system_dirs]


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
        mean_pixel=33.32,
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
        mean_pixel=72.94,
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
        install_hint="on Debian: apt-get install dataset-fashion-mnist",
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetNotFound(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None
