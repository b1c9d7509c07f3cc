"""A damaged model store: the damaged version is unavailable with the reason, everything else works."""

import hashlib
import io
import json
import os
import shutil
import zipfile

import numpy as np
import pytest

BLANK = {"pixels": [0] * 784}


def _resign(version_dir, data: bytes) -> None:
    """Write ``data`` as v1.npz with a matching sha256, as an attacker with store access could."""
    (version_dir / "v1.npz").write_bytes(data)
    meta = json.loads((version_dir / "v1.json").read_text())
    meta["sha256"] = hashlib.sha256(data).hexdigest()
    (version_dir / "v1.json").write_text(json.dumps(meta))


def _npz_with_header(original: bytes, key: str, shape: tuple[int, ...]) -> bytes:
    """The model file with array ``key``'s header claiming ``shape`` (no data behind it)."""
    out = io.BytesIO()
    with np.load(io.BytesIO(original)) as f, zipfile.ZipFile(out, "w") as archive:
        for name in f.files:
            member = io.BytesIO()
            if name == key:
                header = {"descr": "<f4", "fortran_order": False, "shape": shape}
                np.lib.format.write_array_header_1_0(member, header)
                member.write(b"\0" * 64)
            else:
                np.lib.format.write_array(member, f[name])
            archive.writestr(f"{name}.npy", member.getvalue())
    return out.getvalue()


def _bomb(original: bytes) -> bytes:
    """A small file whose spec claims a huge network."""
    out = io.BytesIO()
    spec = {"hidden": [65536] * 16}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        member = io.BytesIO()
        np.lib.format.write_array(member, np.array(json.dumps(spec)))
        archive.writestr("spec.npy", member.getvalue())
    return out.getvalue()


def damage(kind: str, store) -> None:
    folder = store / "mnist"
    data = (folder / "v1.npz").read_bytes()
    if kind == "truncated":
        (folder / "v1.npz").write_bytes(data[: len(data) // 3])
    elif kind == "truncated_resigned":
        _resign(folder, data[: len(data) // 3])
    elif kind == "bit_flipped_resigned":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0xFF
        _resign(folder, bytes(flipped))
    elif kind == "header_150_gib":
        _resign(folder, _npz_with_header(data, "W1", (200_000, 200_000)))
    elif kind == "spec_bomb":
        _resign(folder, _bomb(data))
    elif kind == "sidecar_not_json":
        (folder / "v1.json").write_text("{not json")
    elif kind == "sidecar_not_object":
        (folder / "v1.json").write_text("[1, 2, 3]")
    elif kind == "model_missing":
        (folder / "v1.npz").unlink()
    elif kind == "symlink_out_of_store":
        outside = store.parent / "outside.npz"
        shutil.copy(folder / "v1.npz", outside)
        (folder / "v1.npz").unlink()
        os.symlink(outside, folder / "v1.npz")
    else:
        raise AssertionError(kind)


@pytest.fixture
def two_models(store_dir, make_client):
    shutil.copytree(store_dir / "mnist", store_dir / "other")
    return store_dir, make_client()


KINDS = [
    "truncated",
    "truncated_resigned",
    "bit_flipped_resigned",
    "header_150_gib",
    "spec_bomb",
    "sidecar_not_json",
    "sidecar_not_object",
    "model_missing",
    "symlink_out_of_store",
]


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_version_is_unavailable_and_nothing_else_breaks(two_models, kind):
    store, client = two_models
    damage(kind, store)
    broken = client.post("/predict", json=BLANK)
    assert broken.status_code == 503 and broken.json["error"]["code"] == "model_unavailable"
    assert "mnist v1" in broken.json["error"]["message"] and str(store) not in broken.json["error"]["message"]
    assert client.post("/predict", json={**BLANK, "model": "other"}).status_code == 200
    listing = client.get("/models")
    assert listing.status_code == 200
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
    if kind.startswith("sidecar"):
        mnist = next(m for m in listing.json["models"] if m["name"] == "mnist")
        assert mnist["versions"] == [] and mnist["unavailable"][0]["version"] == 1


@pytest.mark.parametrize("pointer", ["garbage", "99", "../../etc/passwd", "\x00\xff", ""])
def test_garbage_default_pointers_fall_back(two_models, pointer):
    store, client = two_models
    (store / "mnist" / "DEFAULT").write_text(pointer)
    (store / "DEFAULT").write_text(pointer)
    assert client.post("/predict", json=BLANK).status_code == 200
    assert client.get("/models").status_code == 200 and client.get("/readyz").status_code == 200
