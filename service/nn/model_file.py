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
import zipfile
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


MAX_SPEC_BYTES = 1 << 20


def _read_member(archive: zipfile.ZipFile, member: str, check) -> np.ndarray:
    """Read one ``.npy`` member, after ``check(shape, dtype)`` approved its header (so no claim in
    a header, of 150 GiB say, is ever allocated)."""
    with archive.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        check(shape, dtype)
        count = int(np.prod(shape))
        data = f.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ValueError(f"{member} is truncated")
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def load(source: str | Path | BinaryIO, *, dtype: np.dtype | type = np.float32) -> MLP:
    """Rebuild a network from a ``.npz`` file; raise ``ModelFileError`` when it does not fit.

    Arrays only (no pickles); the spec is read first and every parameter's header is checked
    against it before its data is read."""
    name = str(source) if isinstance(source, str | Path) else "model file"
    try:
        with zipfile.ZipFile(source) as archive:
            members = {m.removesuffix(".npy"): m for m in archive.namelist()}
            if SPEC_KEY not in members:
                raise ModelFileError(f"{name}: no '{SPEC_KEY}' array: not a backprop model file")

            def spec_header(shape, dt) -> None:
                if shape != () or dt.kind != "U" or dt.itemsize > MAX_SPEC_BYTES:
                    raise ModelFileError(f"{name}: '{SPEC_KEY}' is not a JSON string")

            spec = ModelSpec.model_validate_json(
                str(_read_member(archive, members[SPEC_KEY], spec_header)[()])
            )
            expected = spec.param_shapes()
            missing = sorted(set(expected) - set(members))
            extra = sorted(set(members) - set(expected) - {SPEC_KEY})
            if missing or extra:
                raise ModelFileError(
                    f"{name}: arrays do not match the spec (missing {missing}, unexpected {extra})"
                )
            params = {}
            for key, shape in expected.items():

                def param_header(found, dt, key=key, shape=shape) -> None:
                    if tuple(found) != shape:
                        raise ModelFileError(f"{name}: array {key} has shape {found}, the spec needs {shape}")
                    if dt.kind != "f" or dt.itemsize > 8:
                        raise ModelFileError(f"{name}: array {key} has dtype {dt}, expected floating point")

                array = _read_member(archive, members[key], param_header)
                if not np.all(np.isfinite(array)):
                    raise ModelFileError(f"{name}: array {key} holds NaN or infinite values")
                params[key] = np.ascontiguousarray(array, dtype=dtype)
    except ModelFileError:
        raise
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ModelFileError(f"{name}: invalid spec: {first['msg']} at {first['loc']}") from exc
    except Exception as exc:  # a damaged zip or header fails in many ways, all the same here
        raise ModelFileError(f"{name}: not a readable .npz model file ({type(exc).__name__}: {exc})") from exc
    return MLP(spec, params)


def spec_dict(network: MLP) -> dict:
    return json.loads(network.spec.model_dump_json())
