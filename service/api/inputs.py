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


def parse_json(body: bytes | str, loc: list[Any] | None = None) -> Any:
    """Parse a JSON body (or, at ``loc``, a field that holds JSON text). ``NaN``/``Infinity``
    literals are read (as floats) so that validation can say where they are, rather than rejecting
    the whole body as malformed."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body, parse_constant=float)
    except (ValueError, UnicodeDecodeError) as exc:
        if loc is not None:
            raise invalid(loc, f"is not valid JSON: {exc}", "json_invalid") from None
        raise invalid(["body"], str(exc), "json_invalid", message=f"body is not valid JSON: {exc}") from None
    except RecursionError:
        msg = "is nested too deeply to be a request of this API"
        raise invalid(loc or ["body"], msg, "json_invalid") from None


def parse_object(body: bytes | str, loc: list[Any] | None = None) -> dict[str, Any]:
    """``parse_json``, and the document must be a JSON object."""
    document = parse_json(body, loc)
    if not isinstance(document, dict):
        msg = f"must be a JSON object, got {type(document).__name__}"
        raise invalid(loc or ["body"], msg, "object_type")
    return document


def may_hide_non_numbers(body: bytes, outside: Any) -> bool:
    """Could the number arrays of ``body`` hold strings, booleans or nulls? ``outside`` is the
    parsed document with any number in place of those arrays.

    NumPy would quietly read ``true`` as 1 among integers, and ``null`` as NaN. Such values leave
    traces in the raw text: more quote characters than the strings of ``outside`` (keys included)
    need, two each at least; or more of the letters ``u`` and ``l`` (one of which is in every
    ``true``, ``false`` and ``null``) than ``outside``'s strings and literals hold, where an escape
    such as ``\u006c`` brings its own ``u``. A false alarm only costs a precise walk
    (``first_non_number``); a real one is never missed. Counted with NumPy: on a 700 KB batch,
    ``bytes.count`` would take milliseconds."""
    quotes, letters = _quotes_and_letters(outside)
    raw = np.frombuffer(body, dtype=np.uint8)
    if np.count_nonzero(raw == _QUOTE) > quotes:
        return True
    return np.count_nonzero((raw == _U) | (raw == _L)) > letters


_QUOTE, _U, _L = b'"ul'
_LITERAL_LETTERS = {None: 3, True: 1, False: 1}  # nUll, trUe, faLse


def _quotes_and_letters(value: Any) -> tuple[int, int]:
    """The quote characters ``value`` needs at least, and its letters u and l, as JSON text."""
    if isinstance(value, str):
        return 2, value.count("u") + value.count("l")
    if value is None or isinstance(value, bool):
        return 0, _LITERAL_LETTERS[value]
    if isinstance(value, dict):
        parts = [*value, *value.values()]
    elif isinstance(value, list):
        parts = value
    else:
        return 0, 0
    quotes = letters = 0
    for part in parts:
        more_quotes, more_letters = _quotes_and_letters(part)
        quotes, letters = quotes + more_quotes, letters + more_letters
    return quotes, letters


_CONTAINERS = {dict: "an object", list: "an array"}


def first_non_number(data: list[Any], loc: list[Any], *, nested: bool = True) -> None:
    """Raise for the first value of ``data`` (in row-major order) that is not a JSON number a float
    can hold; with ``nested=False``, a list inside ``data`` is such a value too."""
    stack: list[tuple[Any, list[Any]]] = [(item, [*loc, i]) for i, item in reversed(list(enumerate(data)))]
    while stack:
        value, where = stack.pop()
        if isinstance(value, list) and nested:
            stack.extend((item, [*where, i]) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, bool) or not isinstance(value, int | float):
            shown = _CONTAINERS.get(type(value)) or orjson.dumps(value).decode()[:40]
            raise invalid(where, f"must be a number, got {shown}", "number_type")
        elif isinstance(value, int) and not -_FLOAT_MAX <= value <= _FLOAT_MAX:
            msg = "must be a finite number, got an integer beyond float range"
            raise invalid(where, msg, "finite_number")


def numbers(data: list[Any]) -> np.ndarray | None:
    """JSON numbers in lists nested evenly, as an array shaped as the nesting: uint8 when every one
    is an integer 0-255 (the common case, read as bytes without a pass through Python floats), else
    int64 or float64; None when they are not all numbers or not nested evenly, for the caller to
    find out why (``first_non_number``). Booleans count as numbers here: ``may_hide_non_numbers``
    is the caller's guard against them."""
    pixels = _as_bytes(data)
    if pixels is not None:
        return pixels
    try:
        array = np.asarray(data)
        if array.dtype.kind == "O":  # integers beyond int64: as floats, for the range check to name
            array = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):  # ragged, or beyond float range
        return None
    return array if array.dtype.kind in "iuf" else None


def _as_bytes(data: list[Any]) -> np.ndarray | None:
    """``numbers`` for integers 0-255 in a list or a list of equal lists; None for anything else.
    ``bytes()`` takes exactly those integers and refuses floats, strings, lists, and values out of
    range; a row that is not a list is refused first (``bytes(5)`` would be five zeros)."""
    try:
        if data and isinstance(data[0], list):
            width = len(data[0])
            if not all(type(row) is list and len(row) == width for row in data):
                return None
            return np.frombuffer(b"".join(map(bytes, data)), dtype=np.uint8).reshape(len(data), width)
        return np.frombuffer(bytes(data), dtype=np.uint8)
    except (TypeError, ValueError):
        return None


_PIXEL_FIELDS = {"pixels": False, "instances": True}  # the field, and whether it holds a batch
# The validation context's key saying that a payload came from parse_predict_json.
NUMBERS_CHECKED = "numbers_checked"


def numbers_only(value: Any, context: dict[str, Any] | None, field: str, *, batch: bool) -> None:
    """Raise for a value of the pixel array ``value`` that is no number. NumPy would read JSON's true
    and false as 1 and 0; parse_predict_json rules them out from the raw text, and its callers say
    so in the validation ``context``; a body read otherwise is walked."""
    if isinstance(value, list) and not (context or {}).get(NUMBERS_CHECKED):
        first_non_number(value, [field], nested=batch)


def parse_predict_json(body: bytes) -> dict[str, Any]:
    """The JSON object of a /predict body; pixel arrays hold only numbers (or it raises)."""
    payload = parse_object(body)
    outside = {k: 0 if k in _PIXEL_FIELDS else v for k, v in payload.items()}
    if may_hide_non_numbers(body, outside):
        for field, batch in _PIXEL_FIELDS.items():
            numbers_only(payload.get(field), None, field, batch=batch)
    return payload


def to_matrix(value: Any, field: str, *, batch: bool, max_batch: int) -> np.ndarray:
    """(N, 784) pixels from one array of 784 numbers (``batch=False``) or a list of them: uint8
    when they are integers 0-255, else int64 or float64 (``check_range`` tells the rest)."""
    if not isinstance(value, list):
        raise invalid([field], f"must be an array, got {type(value).__name__}", "array_type")
    rows = value if batch else [value]
    if batch and not rows:
        raise invalid([field], "must hold at least one image", "too_short")
    check_batch(len(rows), max_batch, [field])
    matrix = numbers(rows)
    if matrix is None or matrix.ndim != 2 or matrix.shape[1] != PIXELS:
        for i, row in enumerate(rows):
            loc = [field, i] if batch else [field]
            if not isinstance(row, list):
                msg = f"must be an array of {PIXELS} numbers, got {type(row).__name__}"
                raise invalid(loc, msg, "array_type")
            first_non_number(row, loc, nested=False)
            if len(row) != PIXELS:
                raise invalid(loc, f"must hold exactly {PIXELS} numbers, got {len(row)}", "array_length")
        raise invalid([field], f"must hold arrays of {PIXELS} numbers", "array_type")  # not reached
    return matrix


def check_range(matrix: np.ndarray, field: str, *, batch: bool, scale: str) -> None:
    """Every value finite and within [0, 255] (``scale="pixel"``) or [0, 1] (``"unit"``)."""
    top = SCALE_MAX[scale]
    outside = images.first_outside(matrix, top)
    if outside is None:
        return
    i, j, value = outside
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
