"""Random distortions of square images for training: shifts, affine transforms, elastic warps.

Every function takes a batch as (N, side*side) floats, already normalized, and returns a new
array of the same shape; pixels that come from outside the image take the ``background`` value.
The affine transform and the elastic field (Simard, Steinkraus and Platt 2003: a random field of
displacements in [-1, 1], smoothed by a Gaussian of ``elastic_sigma`` pixels and scaled by
``elastic_alpha`` pixels) are combined into one map of where each output pixel samples, and
resampled once, bilinearly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Augmentation:
    """How strongly to distort; every strength at zero leaves images unchanged.

    ``shift``: integer translation of up to that many pixels on each axis; ``rotate`` and ``shear``:
    up to that many degrees either way; ``scale``: zoom by a factor in [1 - scale, 1 + scale];
    ``elastic_alpha``: the elastic displacement's scale in pixels, ``elastic_sigma`` its smoothness.
    """

    shift: int = 0
    rotate: float = 0.0
    scale: float = 0.0
    shear: float = 0.0
    elastic_alpha: float = 0.0
    elastic_sigma: float = 4.0

    @property
    def warps(self) -> bool:
        return bool(self.rotate or self.scale or self.shear or self.elastic_alpha)

    @property
    def active(self) -> bool:
        return bool(self.shift) or self.warps


def _side(batch: np.ndarray) -> int:
    side = math.isqrt(batch.shape[1])
    if side * side != batch.shape[1]:
        raise ValueError(f"augmentation needs square images, got {batch.shape[1]} inputs")
    return side


def augment(
    batch: np.ndarray, rng: np.random.Generator, augmentation: Augmentation, *, background: float
) -> np.ndarray:
    """A distorted copy of ``batch`` (N, side*side): a fresh random distortion per image."""
    if not augmentation.warps:
        if not augmentation.shift:
            return batch.copy()
        return random_shift(batch, rng, max_shift=augmentation.shift, background=background)
    return _warp(batch, rng, augmentation, background)


def random_shift(
    batch: np.ndarray, rng: np.random.Generator, *, max_shift: int, background: float
) -> np.ndarray:
    """Shift each image of ``batch`` (N, side*side) by up to ``max_shift`` whole pixels per axis."""
    n, size = batch.shape
    side = _side(batch)
    images = batch.reshape(n, side, side)
    out = np.full((n, side, side), background, dtype=batch.dtype)
    offsets = rng.integers(-max_shift, max_shift + 1, size=(2, n))
    # One slice copy per distinct offset: far faster than a per-pixel gather.
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            chosen = np.flatnonzero((offsets[0] == dy) & (offsets[1] == dx))
            if chosen.size:
                out[chosen, max(dy, 0) : side + min(dy, 0), max(dx, 0) : side + min(dx, 0)] = images[
                    chosen, max(-dy, 0) : side + min(-dy, 0), max(-dx, 0) : side + min(-dx, 0)
                ]
    return out.reshape(n, size)


@lru_cache(maxsize=8)
def gaussian_matrix(side: int, sigma: float) -> np.ndarray:
    """(side, side) matrix K such that ``K @ f`` smooths each column of ``f`` by a Gaussian of
    ``sigma`` pixels, truncated at 4 sigma, with zeros beyond the border (scipy's mode='constant')."""
    radius = int(4 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    offsets = np.arange(side)[:, None] - np.arange(side)[None, :]
    kernel = np.where(np.abs(offsets) <= radius, np.exp(-0.5 * (offsets / sigma) ** 2), 0.0)
    return (kernel / taps.sum()).astype(np.float32)


def elastic_field(n: int, side: int, rng: np.random.Generator, *, alpha: float, sigma: float) -> np.ndarray:
    """(2, n, side, side) displacements in pixels: uniform noise in [-alpha, alpha], smoothed by a
    Gaussian of ``sigma`` pixels. The smoothing is separable: one matrix product per axis."""
    noise = rng.random((2 * n * side, side), dtype=np.float32)
    noise *= np.float32(2 * alpha)
    noise -= np.float32(alpha)
    smoothing = gaussian_matrix(side, float(sigma)).T
    # Along rows, then along columns: each a single matrix product over the whole batch.
    along_rows = (noise @ smoothing).reshape(2 * n, side, side).transpose(0, 2, 1).reshape(-1, side)
    return (along_rows @ smoothing).reshape(2, n, side, side).transpose(0, 1, 3, 2)


def _affine_matrices(n: int, rng: np.random.Generator, augmentation: Augmentation) -> np.ndarray:
    """(n, 2, 2) maps from an output pixel's offset to the centre to its source offset, (y, x)."""
    angle = np.radians(rng.uniform(-augmentation.rotate, augmentation.rotate, n))
    shear = np.tan(np.radians(rng.uniform(-augmentation.shear, augmentation.shear, n)))
    zoom = 1.0 / rng.uniform(1.0 - augmentation.scale, 1.0 + augmentation.scale, n)
    cos, sin = np.cos(angle), np.sin(angle)
    # rotation @ shear (x += shear * y), then scaled: sampling farther out shrinks the digit
    return zoom[:, None, None] * np.stack(
        [np.stack([cos, cos * shear - sin], axis=-1), np.stack([sin, sin * shear + cos], axis=-1)], axis=1
    )


def _warp(
    batch: np.ndarray, rng: np.random.Generator, augmentation: Augmentation, background: float
) -> np.ndarray:
    n = batch.shape[0]
    side = _side(batch)
    centre = (side - 1) / 2.0
    grid = np.indices((side, side), dtype=np.float32).reshape(2, -1) - np.float32(centre)  # (2, P)
    source = np.einsum("nij,jp->inp", _affine_matrices(n, rng, augmentation).astype(np.float32), grid)
    source += np.float32(centre)
    if augmentation.shift:
        source += rng.integers(-augmentation.shift, augmentation.shift + 1, size=(2, n, 1)).astype(np.float32)
    if augmentation.elastic_alpha:
        source += elastic_field(
            n, side, rng, alpha=augmentation.elastic_alpha, sigma=augmentation.elastic_sigma
        ).reshape(2, n, -1)
    return bilinear_sample(batch.reshape(n, side, side), source, background)


def bilinear_sample(images: np.ndarray, source: np.ndarray, background: float) -> np.ndarray:
    """Sample ``images`` (N, side, side) at ``source`` (2, N, P) = (row, column) coordinates.

    Returns (N, P); coordinates outside the image read ``background``. ``source`` is overwritten."""
    n, side, _ = images.shape
    # A border of background: one pixel before, two after, so a corner one past the last still reads.
    stride = side + 3
    padded = np.full((n, stride, stride), background, dtype=images.dtype)
    padded[:, 1 : side + 1, 1 : side + 1] = images
    flat = padded.reshape(-1)
    # Anything beyond the border reads only the border; clipping keeps the indices inside.
    np.clip(source, -1, side, out=source)
    floor = np.floor(source)
    weight_y, weight_x = (source - floor).astype(images.dtype)
    offset = (np.arange(n) * stride * stride + stride + 1)[:, None]
    corner = (floor[0] * stride + floor[1] + offset).astype(np.intp)
    # The other three corners are the same index into views of the image shifted by a pixel.
    top_left, top_right = flat[corner], flat[1:][corner]
    bottom_left, bottom_right = flat[stride:][corner], flat[stride + 1 :][corner]
    top = top_left + (top_right - top_left) * weight_x
    bottom = bottom_left + (bottom_right - bottom_left) * weight_x
    return top + (bottom - top) * weight_y
