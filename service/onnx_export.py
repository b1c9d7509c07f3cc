"""A stored version as a standard ONNX graph, for other runtimes (onnxruntime, Triton's
onnxruntime backend): built with the ``onnx`` package (``pip install 'backprop-service[onnx]'``)
and checked with ``onnx.checker`` before it is handed out.

The graph: ``pixels`` [N, input_size] (uint8 or float32, on the 0-255 scale) -> Cast to float32 ->
Mul and Sub (the input normalization, as the service computes it) -> Gemm, Relu, ... Gemm ->
``probabilities`` (Softmax) [N, classes] and ``label`` (ArgMax, int64) [N].
"""

from __future__ import annotations

import json
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from service.errors import ExtraMissing
from service.nn.network import MLP

OPSET = 17  # onnxruntime 1.11 and later (Triton 22.04 and later) run it
IR_VERSION = 8  # the IR of opset 17's release, which older runtimes also read
INPUT_NAME = "pixels"


class ExportOptions(BaseModel):
    """How to export: the one declaration of these options (the route's query string and
    ``backprop export``'s flags come from it)."""

    model_config = ConfigDict(extra="forbid")

    pixels: Literal["uint8", "float32"] = Field(
        "uint8", description="the input's datatype, on the 0-255 scale either way (uint8 is UINT8 in Triton)"
    )


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ExtraMissing(
            "ONNX export needs the onnx package: python -m pip install 'backprop-service[onnx]'"
        ) from None
    return onnx


def to_onnx(network: MLP, metadata: dict[str, Any], options: ExportOptions | None = None) -> bytes:
    """The serialized ONNX model of ``network``; ``metadata`` (its sidecar) names it in the file."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    options = options or ExportOptions()
    spec, norm = network.spec, network.spec.normalization
    input_type = TensorProto.UINT8 if options.pixels == "uint8" else TensorProto.FLOAT
    # The service's own arithmetic (MLP.normalize): x * (1 / pixel_max / std) - mean / std, in float32.
    constants = {
        "scale": np.float32(1.0 / norm.pixel_max / norm.std),
        "shift": np.float32(norm.mean / norm.std),
    }
    initializers = [numpy_helper.from_array(np.asarray(v), name) for name, v in constants.items()]
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["as_float", "scale"], ["scaled"]),
        helper.make_node("Sub", ["scaled", "shift"], ["h0"]),
    ]
    depth = len(spec.hidden) + 1
    for i in range(1, depth + 1):
        for key in (f"W{i}", f"b{i}"):
            initializers.append(numpy_helper.from_array(network.params[key].astype(np.float32), key))
        out = "logits" if i == depth else f"z{i}"
        nodes.append(helper.make_node("Gemm", [f"h{i - 1}", f"W{i}", f"b{i}"], [out]))
        if i < depth:
            nodes.append(helper.make_node("Relu", [out], [f"h{i}"]))
    nodes += [
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        f"{metadata['name']}_v{metadata['version']}",
        [helper.make_tensor_value_info(INPUT_NAME, input_type, ["N", spec.input_size])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", spec.num_classes]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        ],
        initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="backprop-service",
        doc_string=f"{metadata['name']} v{metadata['version']}: a NumPy-trained MLP on 28x28 digit pixels",
    )
    model.ir_version = IR_VERSION
    described = {
        "model": metadata["name"],
        "version": str(metadata["version"]),
        "sha256_of_npz": str(metadata.get("sha256", "")),
        "class_names": json.dumps(list(spec.class_names)),
    }
    helper.set_model_props(model, described)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()
