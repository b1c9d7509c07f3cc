"""Self-describing ``.npz`` model files: parameter arrays plus the spec as a JSON string array.

The file holds arrays only, so ``np.load(path, allow_pickle=False)`` reads it, and it carries its
architecture and input normalization, so the network can be rebuilt from the file alone::

    with np.load("model.npz", allow_pickle=False) as f:
        spec = json.loads(str(f["spec"]))      # {"hidden": [512, 256], "normalization": ...}
        W1, b1 = f["W1"], f["b1"]              # (784, 512), (512,)
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydantic import ValidationError

from service.errors import ModelFileError
from service.nn.network import MLP, ModelSpec

SPEC_KEY = "spec"


def to_bytes(network: MLP) -> bytes:
    """The ``.npz`` file of ``network`` as bytes (uncompressed: loading speed beats size here)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{SPEC_KEY: np.array(network.spec.model_dump_json())}, **network.params)
    return buffer.getvalue()


def save(network: MLP, path: str | Path) -> None:
    Path(path).write_bytes(to_bytes(network))


def load(source: str | Path | BinaryIO, *, dtype: np.dtype | type = np.float32) -> MLP:
    """Rebuild a network from a ``.npz`` file; raise ``ModelFileError`` when it does not fit."""
    name = str(source) if isinstance(source, str | Path) else "model file"
    try:
        with np.load(source, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ModelFileError(f"{name}: not a readable .npz file ({exc})") from exc
    if SPEC_KEY not in arrays:
        raise ModelFileError(f"{name}: no '{SPEC_KEY}' array: not a backprop model file")
    try:
        spec = ModelSpec.model_validate_json(str(arrays.pop(SPEC_KEY)))
    except ValidationError as exc:
        raise ModelFileError(
            f"{name}: invalid spec: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}"
        ) from exc
    expected = spec.param_shapes()
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise ModelFileError(f"{name}: arrays do not match the spec (missing {missing}, unexpected {extra})")
    params = {}
    for key, shape in expected.items():
        array = arrays[key]
        if array.shape != shape:
            raise ModelFileError(f"{name}: array {key} has shape {array.shape}, the spec needs {shape}")
        if array.dtype.kind != "f":
            raise ModelFileError(f"{name}: array {key} has dtype {array.dtype}, expected floating point")
        if not np.all(np.isfinite(array)):
            raise ModelFileError(f"{name}: array {key} holds NaN or infinite values")
        params[key] = np.ascontiguousarray(array, dtype=dtype)
    return MLP(spec, params)


def spec_dict(network: MLP) -> dict:
    return json.loads(network.spec.model_dump_json())
