"""Turning request bodies into pixel matrices, at NumPy speed, with errors that point at the input.

A 10,000-image JSON batch holds 7.8 million numbers: per-element validation in Python (or in
Pydantic) would take longer than the prediction. Arrays are therefore converted with NumPy in one
call, and only when that fails do we walk the input to find the first offending field and index.
Every error is an ``InvalidInput`` whose details carry ``loc`` (e.g. ``["instances", 3, 17]``).
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np
import orjson

from service import images
from service.errors import InvalidInput

PIXELS = 784
_FLOAT_MAX = float(np.finfo(np.float64).max)  # a Python float compares exactly with any int
SCALE_MAX = {"pixel": 255.0, "unit": 1.0}


invalid = InvalidInput.at


def check_batch(images: int, max_batch: int, loc: list[Any]) -> None:
    """At most ``max_batch`` images per request, however they came (JSON, raw bytes, a tensor)."""
    if images > max_batch:
        raise invalid(loc, f"holds {images} images; at most {max_batch} per request", "too_long")


def parse_json(body: bytes) -> Any:
    """Parse a JSON body. ``NaN``/``Infinity`` literals are read (as floats) so that validation can
    say where they are, rather than rejecting the whole body as malformed."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body, parse_constant=float)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(["body"], str(exc), "json_invalid", message=f"body is not valid JSON: {exc}") from None
    except RecursionError:
        msg = "is nested too deeply to be a request of this API"
        raise invalid(["body"], msg, "json_invalid") from None


def _scan_row(row: Any, loc: list[Any], *, check_length: bool = True) -> None:
    """Raise for the first element of ``row`` that is not a plain number (or a wrong length)."""
    if not isinstance(row, list):
        raise invalid(loc, f"must be an array of {PIXELS} numbers, got {type(row).__name__}", "array_type")
    for j, value in enumerate(row):
        if isinstance(value, bool) or not isinstance(value, int | float):
            shown = json.dumps(value) if isinstance(value, str | bool | type(None)) else type(value).__name__
            raise invalid([*loc, j], f"must be a number, got {shown}", "number_type")
        if isinstance(value, int) and not -_FLOAT_MAX <= value <= _FLOAT_MAX:
            raise invalid(
                [*loc, j], "must be a finite number, got an integer beyond float range", "finite_number"
            )
    if check_length and len(row) != PIXELS:
        raise invalid(loc, f"must hold exactly {PIXELS} numbers, got {len(row)}", "array_length")


def _needs_type_scan(body: bytes, payload: dict[str, Any]) -> bool:
    """Could a pixel array hold something other than plain numbers?

    NumPy's float conversion would quietly read ``"7"`` as 7, ``null`` as NaN and ``true`` as 1.
    Such values leave traces in the raw text: a ``null``/``true``/``false`` token, or more quote
    characters than the top-level keys and string values account for. A false alarm only costs
    a precise scan; a real one is never missed.
    """
    if b"null" in body or b"true" in body or b"false" in body:
        return True
    expected_quotes = sum(2 + (2 if isinstance(v, str) else 0) for v in payload.values())
    return body.count(b'"') > expected_quotes


def parse_predict_json(body: bytes) -> dict[str, Any]:
    """The JSON object of a /predict body; pixel arrays hold only numbers (or it raises)."""
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise invalid(["body"], f"must be a JSON object, got {type(payload).__name__}", "object_type")
    if _needs_type_scan(body, payload):
        for field, batch in (("pixels", False), ("instances", True)):
            value = payload.get(field)
            if not isinstance(value, list):
                continue
            for i, row in enumerate(value if batch else [value]):
                if isinstance(row, list):
                    _scan_row(row, [field, i] if batch else [field], check_length=False)
    return payload


def to_matrix(value: Any, field: str, *, batch: bool, max_batch: int) -> np.ndarray:
    """(N, 784) float64 from one array of 784 numbers (``batch=False``) or a list of them."""
    if not isinstance(value, list):
        raise invalid([field], f"must be an array, got {type(value).__name__}", "array_type")
    rows = value if batch else [value]
    if batch and not rows:
        raise invalid([field], "must hold at least one image", "too_short")
    check_batch(len(rows), max_batch, [field])
    try:
        matrix = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        matrix = None
    if matrix is None or matrix.ndim != 2 or matrix.shape[1] != PIXELS:
        for i, row in enumerate(rows):
            _scan_row(row, [field, i] if batch else [field])
        raise invalid([field], f"must hold arrays of {PIXELS} numbers", "array_type")  # not reached
    return matrix


def check_range(matrix: np.ndarray, field: str, *, batch: bool, scale: str) -> None:
    """Every value finite and within [0, 255] (``scale="pixel"``) or [0, 1] (``"unit"``)."""
    top = SCALE_MAX[scale]
    bad = ~((matrix >= 0.0) & (matrix <= top))  # NaN compares false: caught here too
    if not bad.any():
        return
    i, j = (int(k) for k in np.argwhere(bad)[0])
    value = float(matrix[i, j])
    loc = [field, i, j] if batch else [field, j]
    if not math.isfinite(value):
        raise invalid(loc, f"must be a finite number, got {value}", "finite_number")
    hint = ' (0-255 values need "scale": "pixel")' if scale == "unit" and 0 <= value <= 255 else ""
    raise invalid(loc, f"must be between 0 and {top:g} for scale {scale!r}, got {value:g}{hint}", "range")


def from_bytes(body: bytes, *, max_batch: int) -> np.ndarray:
    """(N, 784) uint8 from raw bytes, N x 784 of them."""
    if not body:
        raise invalid(["body"], f"is empty; send N x {PIXELS} bytes", "too_short")
    if len(body) % PIXELS:
        raise invalid(["body"], f"holds {len(body)} bytes, not a multiple of {PIXELS}", "array_length")
    n = len(body) // PIXELS
    check_batch(n, max_batch, ["body"])
    return np.frombuffer(body, dtype=np.uint8).reshape(n, PIXELS)


IMAGE_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}


def from_image(body: bytes, mimetype: str, *, max_pixels: int) -> np.ndarray:
    """(1, 784) float pixels from a picture of a digit, prepared as ``backprop predict FILE`` does."""
    if not body:
        raise invalid(["body"], f"is empty; send a {IMAGE_FORMATS[mimetype]} picture of a digit", "too_short")
    what = f"the {mimetype} body"
    return images.decode_digit(
        io.BytesIO(body), formats=(IMAGE_FORMATS[mimetype],), max_pixels=max_pixels, what=what
    ).reshape(1, -1)
