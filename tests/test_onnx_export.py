"""The ONNX export run by onnxruntime on the 500 repository digits: the service's labels, and its
probabilities within 1e-5, for both input datatypes; the graph passes onnx.checker."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from service.cli import main
from service.errors import ExtraMissing
from service.onnx_export import ExportOptions, to_onnx
from service.registry import ModelRegistry
from service.store import ModelStore

onnx = pytest.importorskip("onnx")  # the onnx extra; the quick tier (test extra only) skips this module
ort = pytest.importorskip("onnxruntime")


def _session(data: bytes):
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("pixels", ["uint8", "float32"])
def test_onnxruntime_answers_as_the_service(shipped_store, real_digits, pixels):
    store = ModelStore(shipped_store)
    served = ModelRegistry(store).get("mnist", 1)
    data = to_onnx(served.network, served.metadata, ExportOptions(pixels=pixels))
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["pixels"]
    assert [o.name for o in model.graph.output] == ["probabilities", "label"]
    assert {p.key: p.value for p in model.metadata_props}["sha256_of_npz"] == served.metadata["sha256"]
    images, truth = real_digits
    probabilities, labels = _session(data).run(None, {"pixels": images.astype(pixels)})
    expected = served.predict(images)
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-5)
    assert labels.dtype == np.int64 and probabilities.dtype == np.float32
    assert (labels == truth).mean() > 0.98


def test_backprop_export_writes_what_onnxruntime_runs(shipped_store, tmp_path, real_digits, capsys):
    out = tmp_path / "mnist.onnx"
    assert main(["export", "mnist:1", "--onnx", str(out), "--model-store", str(shipped_store)]) == 0
    assert "wrote mnist v1" in capsys.readouterr().out
    labels = _session(out.read_bytes()).run(["label"], {"pixels": real_digits[0][:50]})[0]
    assert labels.shape == (50,)
    assert main(["export", "mnist:7", "--onnx", str(out), "--model-store", str(shipped_store)]) == 1
    assert "has no version 7" in capsys.readouterr().err


def test_without_the_onnx_package_the_export_says_how_to_get_it(shipped_store, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    network, meta = ModelStore(shipped_store).load("mnist", 1)
    with pytest.raises(ExtraMissing, match=r"backprop-service\[onnx\]"):
        to_onnx(network, meta)
