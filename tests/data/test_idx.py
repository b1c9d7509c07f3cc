import gzip
import struct

import numpy as np
import pytest

from service.data import read_idx, read_idx_pair, write_idx
from service.errors import DatasetError


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_round_trip_plain_and_gzip(tmp_path, name):
    array = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / name, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    np.testing.assert_array_equal(read_idx(path), array)


def test_real_mnist_subset_reads(mnist5k_dir):
    images, labels = read_idx_pair(
        mnist5k_dir / "train-images-idx3-ubyte.gz", mnist5k_dir / "train-labels-idx1-ubyte.gz"
    )
    assert images.shape == (5000, 784) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_bad_magic(tmp_path):
    with pytest.raises(DatasetError, match="bad magic number 0x89504e47"):
        read_idx(_write(tmp_path / "x", b"\x89PNG\r\n\x1a\n" + b"\0" * 20))


def test_wrong_element_type(tmp_path):
    with pytest.raises(DatasetError, match="element type 0x0d"):
        read_idx(_write(tmp_path / "x", struct.pack(">HBBI", 0, 0x0D, 1, 1) + b"\0" * 4))


def test_truncated_header_and_body(tmp_path):
    with pytest.raises(DatasetError, match="not even an IDX header"):
        read_idx(_write(tmp_path / "a", b"\0\0"))
    with pytest.raises(DatasetError, match="truncated header"):
        read_idx(_write(tmp_path / "b", struct.pack(">HBB", 0, 8, 3) + b"\0\0\0\5"))
    with pytest.raises(DatasetError, match=r"truncated: 10 data bytes for shape \(3, 2, 2\)"):
        read_idx(_write(tmp_path / "c", struct.pack(">HBB3I", 0, 8, 3, 3, 2, 2) + b"\0" * 10))


def test_truncated_gzip_stream(tmp_path):
    data = gzip.compress(struct.pack(">HBBI", 0, 8, 1, 1000) + b"\1" * 1000)
    with pytest.raises(DatasetError, match="cannot read"):
        read_idx(_write(tmp_path / "x.gz", data[: len(data) // 2]))


def test_trailing_bytes(tmp_path):
    with pytest.raises(DatasetError, match="3 unexpected trailing bytes"):
        read_idx(_write(tmp_path / "x", struct.pack(">HBBI", 0, 8, 1, 2) + b"\0" * 5))


def test_wrong_number_of_dimensions(tmp_path):
    path = write_idx(tmp_path / "labels", np.zeros(4, dtype=np.uint8))
    with pytest.raises(DatasetError, match="has 1 dimensions, expected 3"):
        read_idx(path, ndim=3)


def test_mismatched_counts(tmp_path):
    images = write_idx(tmp_path / "i", np.zeros((3, 28, 28), dtype=np.uint8))
    labels = write_idx(tmp_path / "l", np.zeros(4, dtype=np.uint8))
    with pytest.raises(DatasetError, match="holds 3 images but .* holds 4 labels"):
        read_idx_pair(images, labels)


def test_missing_file_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="cannot read"):
        read_idx(tmp_path / "nothing")
