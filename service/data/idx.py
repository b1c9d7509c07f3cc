"""Reader for the IDX format of MNIST-style datasets, plain or gzip-compressed.

Header: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
dimension. We accept the unsigned-byte type only, which is what every MNIST-style file uses.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from service.errors import DatasetError

_UBYTE = 0x08


def _read_bytes(path: Path) -> bytes:
    try:
        with path.open("rb") as raw:
            head = raw.read(2)
            raw.seek(0)
            if head == b"\x1f\x8b":
                with gzip.open(raw) as unzipped:
                    return unzipped.read()
            return raw.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc


def read_idx(path: str | Path, *, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes into a uint8 array of the header's shape.

    Raises ``DatasetError`` for a bad magic number, a different element type, an unexpected
    number of dimensions, or a file shorter or longer than its header says.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetError(f"{path}: truncated: {len(data)} bytes, not even an IDX header")
    zero, type_code, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or dims == 0:
        raise DatasetError(f"{path}: bad magic number 0x{data[:4].hex()}: not an IDX file")
    if type_code != _UBYTE:
        raise DatasetError(f"{path}: element type 0x{type_code:02x} is not unsigned byte (0x08)")
    if ndim is not None and dims != ndim:
        raise DatasetError(f"{path}: has {dims} dimensions, expected {ndim}")
    header = 4 + 4 * dims
    if len(data) < header:
        raise DatasetError(f"{path}: truncated header ({len(data)} of {header} bytes)")
    shape = struct.unpack(f">{dims}I", data[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    body = len(data) - header
    if body < expected:
        raise DatasetError(f"{path}: truncated: {body} data bytes for shape {shape} ({expected})")
    if body > expected:
        raise DatasetError(f"{path}: {body - expected} unexpected trailing bytes after shape {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_pair(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, rows*cols) uint8 and labels (N,) uint8 from two matching IDX files."""
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    return images.reshape(len(images), -1), labels


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write a uint8 array as IDX (gzip-compressed when ``path`` ends in .gz or ``compress``)."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, _UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path
