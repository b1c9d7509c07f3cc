"""Infer requests and responses of the protocol over gRPC, read and written with the REST side's
contract (``service.api.oip``): the same Pydantic model checks names, datatypes, shapes and outputs,
the same checks read the pixels, and errors name the message's fields.

Inputs come as raw contents (little-endian bytes, as tritonclient sends them) or in the typed field
of their datatype (``uint_contents`` for UINT8, ``fp32_contents``, ``fp64_contents``); outputs go
back as raw contents, in the order asked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.api import inputs
from service.api.oip import codec
from service.api.oip.codec import Inference
from service.api.oip.schemas import InferRequest
from service.grpc import grpc_predict_v2_pb2 as pb

TYPED_FIELDS = {"UINT8": "uint_contents", "FP32": "fp32_contents", "FP64": "fp64_contents"}
_TYPED_DTYPES = {"UINT8": np.uint32, "FP32": np.float32, "FP64": np.float64}


def parameters(entries) -> dict[str, Any]:
    """A protobuf map of parameters as the values they hold."""
    if not entries:
        return {}
    return {
        key: getattr(value, value.WhichOneof("parameter_choice") or "bool_param")
        for key, value in entries.items()
    }


def parse_infer(request: pb.ModelInferRequest, *, input_size: int, max_batch: int) -> Inference:
    # Counted before anything is walked: a message of a million inputs costs one comparison.
    if len(request.inputs) != 1:
        raise inputs.invalid(
            ["inputs"], f"must hold one tensor, 'pixels'; got {len(request.inputs)}", "inputs"
        )
    if len(request.raw_input_contents) > 1:
        raise inputs.invalid(
            ["raw_input_contents"], f"holds {len(request.raw_input_contents)} tensors for one input", "raw"
        )
    tensor = request.inputs[0]
    raw = request.raw_input_contents[0] if request.raw_input_contents else None
    if raw is not None and tensor.HasField("contents"):
        raise inputs.invalid(
            ["inputs[0].contents"], "give the tensor in contents or in raw_input_contents, not both", "raw"
        )
    document = {
        "id": request.id or None,
        "parameters": parameters(request.parameters),
        "inputs": [
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(tensor.shape),
                # Where the values are, for the model's either-or rule: raw bytes, or the contents.
                "parameters": parameters(tensor.parameters) | ({"binary_data_size": len(raw)} if raw else {}),
                "data": None if raw is not None else "contents",
            }
        ],
    }
    if request.outputs:
        document["outputs"] = [
            {"name": o.name, "parameters": parameters(o.parameters)} for o in request.outputs
        ]
    checked = InferRequest.model_validate(document)
    described = checked.inputs[0]
    count = codec.check_shape(described.shape, input_size=input_size, max_batch=max_batch)
    if raw is not None:
        flat, loc = (
            codec.tensor_bytes(described, raw, count, ["raw_input_contents[0]"]),
            "raw_input_contents[0]",
        )
    else:
        flat, loc = _typed(tensor, described.datatype, count)
    return codec.inference(checked, flat, input_size, [loc])


def _typed(
    tensor: pb.ModelInferRequest.InferInputTensor, datatype: str, count: int
) -> tuple[np.ndarray, str]:
    field = TYPED_FIELDS[datatype]
    loc = f"inputs[0].contents.{field}"
    for other in TYPED_FIELDS.values():
        if other != field and len(getattr(tensor.contents, other)):
            raise inputs.invalid([loc], f"is where {datatype} values go; they came in {other}", "contents")
    values = getattr(tensor.contents, field)
    if len(values) != count:
        raise inputs.invalid(
            [loc], f"holds {len(values)} values; shape {list(tensor.shape)} needs {count}", "array_length"
        )
    flat = np.array(values, dtype=_TYPED_DTYPES[datatype])
    if datatype == "UINT8":
        if flat.size and int(flat.max()) > 255:
            raise inputs.invalid([loc], f"holds {int(flat.max())}; UINT8 pixels are 0-255", "range")
        return flat.astype(np.uint8), loc
    return flat.astype(np.float64), loc


def encode_response(
    inference: Inference, probabilities: np.ndarray, *, model_name: str, model_version: int
) -> pb.ModelInferResponse:
    tensors = {
        "probabilities": ("FP32", probabilities.astype("<f4", copy=False)),
        "label": ("INT64", probabilities.argmax(axis=1).astype("<i8")),
    }
    response = pb.ModelInferResponse(
        model_name=model_name, model_version=str(model_version), id=inference.id or ""
    )
    for name, _ in inference.outputs:
        datatype, array = tensors[name]
        response.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
        response.raw_output_contents.append(array.tobytes())
    return response
