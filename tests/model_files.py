"""Model files for upload tests: good ones, and a hostile corpus, each with what the service must
answer."""

from __future__ import annotations

import functools
import io
import json
import zipfile

import numpy as np

from service.nn import model_file
from service.nn.network import MLP, ModelSpec

# What an upload's text options are made of at their longest on the wire: MATHEMATICAL DOUBLE-STRUCK
# DIGIT ZERO takes 4 bytes of UTF-8, 12 percent-encoded in a query string.
WIDE = "\U0001d7d8"


def good_model(hidden: tuple[int, ...] = (16,), seed: int = 0) -> bytes:
    """A small, valid ``.npz`` model file."""
    return model_file.to_bytes(MLP.initialize(ModelSpec(hidden=hidden), np.random.default_rng(seed)))


def _npz(arrays: dict, *, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _arrays(hidden=(16,), seed=0) -> dict:
    network = MLP.initialize(ModelSpec(hidden=hidden), np.random.default_rng(seed))
    return {"spec": np.array(network.spec.model_dump_json()), **network.params}


def _with_spec(spec: dict, arrays: dict) -> bytes:
    return _npz({**arrays, "spec": np.array(json.dumps(spec))})


def _zip_bomb(extra_mib: int = 256) -> bytes:
    """A valid model plus a member that inflates from about 0.25 MiB to ``extra_mib`` MiB."""
    buffer = io.BytesIO(good_model())
    with (
        zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("bomb.npy", "w", force_zip64=True) as member,
    ):
        for _ in range(extra_mib):
            member.write(b"\0" * (1 << 20))
    return buffer.getvalue()


def _object_array(shape) -> np.ndarray:
    array = np.empty(shape, dtype=object)
    array.fill({"pickled": True})
    return array


@functools.cache
def hostile_corpus() -> dict[str, tuple[bytes, str]]:
    """name -> (the file, words the 422 must say)."""
    good = good_model()
    arrays = _arrays()
    spec = json.loads(str(arrays["spec"]))
    nan = {**arrays, "W1": arrays["W1"].copy()}
    nan["W1"][3, 4] = np.nan
    return {
        "a pickle inside the npz": (
            _npz({**arrays, "W1": _object_array(arrays["W1"].shape)}, allow_pickle=True),
            "expected floating point",
        ),
        "a pickled spec": (
            _npz({**arrays, "spec": _object_array(())}, allow_pickle=True),
            "not a JSON string",
        ),
        "a truncated zip": (good[: len(good) // 2], "not a readable .npz"),
        "a zip bomb": (_zip_bomb(), "unexpected ['bomb']"),
        "shapes that disagree with the spec": (
            _npz({**arrays, "W1": np.zeros((784, 8), np.float32)}),
            "array W1 has shape (784, 8), the spec needs (784, 16)",
        ),
        "NaN weights": (_npz(nan), "W1 holds NaN"),
        "a spec for 10^9 units": (_with_spec({**spec, "hidden": [10**9]}, arrays), "invalid spec"),
        "a spec of too many parameters": (
            _with_spec({**spec, "hidden": [65536] * 4}, arrays),
            "more than the 20,000,000 a model may have",
        ),
        "no spec": (_npz({k: v for k, v in arrays.items() if k != "spec"}), "no 'spec' array"),
        "not a zip at all": (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a readable .npz"),
        "an empty body": (b"", "not a readable .npz"),
    }
