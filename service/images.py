"""Turning a picture of a digit into an MNIST-style 28x28 image.

MNIST digits are white on black, fit in a 20x20 box, and sit in a 28x28 frame with their
centre of mass at the centre. A photo or drawing is brought to the same form: grayscale, inverted
when the background is light, cropped to the ink, scaled so its longer side is 20 pixels, and
placed so its centre of mass lands on the centre. One implementation serves ``backprop predict
FILE`` and ``POST /predict`` with an image body (and so the draw page).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from service.errors import BackpropError, UnreadableImage

SIDE, BOX = 28, 20
WORKING_SIDE = 1024  # larger pictures are shrunk to this first: the result is 20 pixels across anyway
MAX_PIXELS = 16_000_000  # a 16-megapixel phone photo; JPEGs count after their reduced decoding


def grey_levels(pixels: np.ndarray, *, unit: bool = False) -> np.ndarray:
    """Pixels as MNIST's whole grey levels, uint8 of the same shape: rounded and clipped to 0-255,
    from the 0-1 scale when ``unit``."""
    scaled = np.asarray(pixels, dtype=np.float64) * (255.0 if unit else 1.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def mnist_style(gray: np.ndarray) -> np.ndarray:
    """A 2-D grayscale array (0-255, any size) -> (784,) float pixels, MNIST-style."""
    a = np.asarray(gray, dtype=np.float64)
    if a.ndim != 2 or a.size == 0:
        raise BackpropError(f"expected a 2-D grayscale image, got shape {a.shape}")
    # The background is whatever dominates the border; MNIST wants it dark.
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if np.median(border) > 127:
        a = 255.0 - a
    a = np.clip(a - np.median(np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])), 0, 255)
    ink = a > 0.2 * a.max() if a.max() > 0 else np.zeros_like(a, dtype=bool)
    if not ink.any():
        return np.zeros(SIDE * SIDE)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = BOX / max(crop.shape)
    height, width = (max(1, round(n * scale)) for n in crop.shape)
    small = Image.fromarray(np.uint8(np.round(crop * 255.0 / crop.max()))).resize(
        (width, height), Image.LANCZOS
    )
    small = np.clip(np.asarray(small, dtype=np.float64), 0, 255)
    total = small.sum() or 1.0
    cy = (small.sum(axis=1) * np.arange(height)).sum() / total
    cx = (small.sum(axis=0) * np.arange(width)).sum() / total
    top = int(np.clip(round(SIDE / 2 - 0.5 - cy), 0, SIDE - height))
    left = int(np.clip(round(SIDE / 2 - 0.5 - cx), 0, SIDE - width))
    frame = np.zeros((SIDE, SIDE))
    frame[top : top + height, left : left + width] = small
    return frame.reshape(-1)


def _grayscale(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparent pixels are background: flatten onto white, as a viewer shows them.
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return np.asarray(image.convert("L"))


def decode_digit(
    source: str | Path | BinaryIO,
    *,
    formats: tuple[str, ...] | None = None,
    max_pixels: int = MAX_PIXELS,
    what: str = "the image",
) -> np.ndarray:
    """A picture of a digit (a file's path, or an open binary file) -> (784,) float pixels,
    MNIST-style. ``formats`` limits the decoders tried (Pillow's names: ``("PNG",)``); a picture
    of more than ``max_pixels`` is refused before it is decoded."""
    try:
        with warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("always")
            # Pillow warns of large pictures as it opens them: the size is checked just below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source, formats=formats)
        with image:
            # JPEG decodes at 1/2, 1/4 or 1/8 scale when asked: a phone's photo costs what it
            # costs at that scale, and that is what is counted.
            image.draft(None, (WORKING_SIDE, WORKING_SIDE))
            width, height = image.size
            if width * height > max_pixels:
                raise UnreadableImage(
                    f"{what} is {width}x{height} pixels as decoded; at most {max_pixels:,} are read "
                    "(BACKPROP_MAX_IMAGE_PIXELS)"
                )
            image.load()
            image.thumbnail((WORKING_SIDE, WORKING_SIDE))
            gray = _grayscale(image)
    except UnreadableImage:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders report damaged input in many types
        kinds = " or ".join(formats) if formats else "an image"
        # Pillow names the file it read: an in-memory one is only "<_io.BytesIO object at 0x...>".
        reason = re.sub(r"\s*<_io\.\w+ object at 0x[0-9a-f]+>", "", str(exc)) or type(exc).__name__
        # A format whose decoder is not installed (the image leaves out AVIF and WebP) is a
        # warning beside Pillow's "cannot identify": the warning is the reason.
        missing = [str(note.message) for note in notes if "support not installed" in str(note.message)]
        if missing:
            reason = missing[0].removeprefix("image file could not be identified because ")
        raise UnreadableImage(f"{what} cannot be read as {kinds}: {reason}") from None
    return mnist_style(gray)


def load_digit(path: str | Path) -> np.ndarray:
    """A PNG/JPEG/... file -> (784,) float pixels, MNIST-style."""
    return decode_digit(path, what=str(path))


NPY_MAGIC = b"\x93NUMPY"
_NOT_NUMBERS = {
    "U": "text",
    "S": "bytes",
    "c": "complex numbers",
    "M": "dates",
    "m": "time spans",
    "V": "records",
}


def load_images(path: str | Path) -> np.ndarray:
    """(N, 784) float pixels, 0-255: from a ``.npy`` of 28x28 / 784 arrays (0-255, or 0-1 for the
    whole file), or a picture of a digit."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        return load_digit(path).reshape(1, -1)
    try:
        with path.open("rb") as file:
            if file.read(len(NPY_MAGIC)) != NPY_MAGIC:
                raise BackpropError(f"{path}: not a .npy file (NumPy's files start with {NPY_MAGIC!r})")
            file.seek(0)
            array = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise BackpropError(f"{path}: cannot read as .npy ({exc})") from exc
    if array.dtype.kind not in "biuf":
        held = _NOT_NUMBERS.get(array.dtype.kind, f"{array.dtype} values")
        raise BackpropError(f"{path}: holds {held}, where pixels are real numbers")
    if array.ndim == 0 or array.shape == (28, 28) or array.ndim == 1:
        array = array.reshape(1, -1)
    if len(array) == 0:
        raise BackpropError(f"{path}: holds no images")
    array = array.reshape(len(array), -1)
    if array.shape[1] != 784:
        raise BackpropError(f"{path}: expected 784 pixels per image, got {array.shape[1]}")
    array = array.astype(np.float64)
    top = 1.0 if array.max() <= 1.0 else 255.0  # NaN compares false: 255
    outside = first_outside(array, top)
    if outside is not None:
        i, j, value = outside
        raise BackpropError(
            f"{path}: image {i}, pixel {j} is {value:g}; pixels are 0-255 (or 0-1 throughout)"
        )
    return array * (255.0 / top)


def first_outside(matrix: np.ndarray, top: float) -> tuple[int, int, float] | None:
    """(row, column, value) of the first value of ``matrix`` (N, D) that is not a number within
    [0, ``top``] (NaN and infinities included), or None."""
    if matrix.dtype == np.uint8 and top >= 255:
        return None
    bad = ~((matrix >= 0.0) & (matrix <= top))  # NaN compares false: caught here too
    if not bad.any():
        return None
    i, j = (int(k) for k in np.argwhere(bad)[0])
    return i, j, float(matrix[i, j])
