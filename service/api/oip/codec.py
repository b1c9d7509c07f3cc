"""Reading Open Inference Protocol (v2) infer requests and writing their responses, in JSON and
with the binary tensor data extension (the JSON, then each binary tensor's bytes, little-endian,
row-major; ``Inference-Header-Content-Length`` says where the JSON ends).

The pixels come out as the matrix ``/predict`` classifies, after the same checks (finite, 0-255,
the shape matches the data, at most ``max_batch`` images), with errors that point at the input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from service.api import inputs
from service.api.oip.schemas import OUTPUT_NAMES, InferRequest, OutputName, RequestInput

# Little-endian, as the extension says, whatever this machine's byte order.
DTYPES = {"UINT8": np.dtype("u1"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
HEADER_LENGTH = "Inference-Header-Content-Length"
_DATA = "inputs[0].data"


@dataclass(frozen=True)
class Inference:
    """A checked infer request: the images and the outputs to send back."""

    id: str | None
    pixels: np.ndarray  # (N, input_size), uint8 or float64 on the 0-255 scale
    outputs: list[tuple[OutputName, bool]]  # (name, as binary), in the order to answer them


ASCII_NUMBER = re.compile(r"[0-9]{1,18}")


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(the JSON, the binary tensors after it)."""
    if header_length is None:
        return body, b""
    text = header_length.strip()
    # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
    if not ASCII_NUMBER.fullmatch(text) or not 0 < int(text) <= len(body):
        raise inputs.invalid(
            [HEADER_LENGTH],
            f"must be the JSON's length in bytes, 1 to the body's {len(body)}, got {header_length[:40]!r}",
            "header_invalid",
        )
    return body[: int(text)], body[int(text) :]


def parse_infer(body: bytes, header_length: str | None, *, input_size: int, max_batch: int) -> Inference:
    head, tail = split_body(body, header_length)
    document = inputs.parse_object(head)
    request = InferRequest.model_validate(document)
    tensor = request.inputs[0]
    count = check_shape(tensor.shape, input_size=input_size, max_batch=max_batch)
    if tensor.parameters.binary_data_size is None:
        if tail:
            raise inputs.invalid(
                ["body"], f"holds {len(tail)} bytes after the JSON, which no input claims", "extra"
            )
        checked = not inputs.may_hide_non_numbers(head, _without_data(document))
        flat = _from_json(tensor, count, checked=checked)
    else:
        flat = _from_bytes(tensor, tail, count)
    return inference(request, flat, input_size, [_DATA])


def inference(request: InferRequest, flat: np.ndarray, input_size: int, loc: list[str]) -> Inference:
    """The checked request, from its input's values (``flat``, read from where ``loc`` says)."""
    pixels = flat.reshape(request.inputs[0].shape[0], input_size)
    if pixels.dtype != np.uint8:
        inputs.check_range(pixels, loc[0], batch=True, scale="pixel")
    return Inference(request.id, pixels, _wanted(request))


def check_shape(shape: list[int], *, input_size: int, max_batch: int) -> int:
    """The number of values the shape holds, once it fits the model and the batch limit."""
    images, pixels = shape[0], math.prod(shape[1:])
    if pixels != input_size:
        raise inputs.invalid(
            ["inputs[0].shape"],
            f"{shape} gives {pixels} pixels per image; this model takes {input_size} "
            f"([N, {input_size}]" + (", or [N, 28, 28])" if input_size == 784 else ")"),
            "shape",
        )
    inputs.check_batch(images, max_batch, ["inputs[0].shape"])
    return images * pixels


def _from_bytes(tensor: RequestInput, tail: bytes, count: int) -> np.ndarray:
    size = tensor.parameters.binary_data_size
    if size != len(tail):
        raise inputs.invalid(
            ["inputs[0].parameters.binary_data_size"],
            f"is {size}, but {len(tail)} bytes follow the JSON",
            "binary_size",
        )
    return tensor_bytes(tensor, tail, count, ["inputs[0].parameters.binary_data_size"])


def tensor_bytes(tensor: RequestInput, data: bytes, count: int, loc: list[str]) -> np.ndarray:
    """The tensor's ``count`` values from its bytes (little-endian, row-major), which ``loc`` names:
    uint8 as they are, the others as float64."""
    dtype = DTYPES[tensor.datatype]
    if len(data) != count * dtype.itemsize:
        raise inputs.invalid(
            loc,
            f"is {len(data)} bytes; shape {tensor.shape} of {tensor.datatype} needs {count * dtype.itemsize}",
            "binary_size",
        )
    flat = np.frombuffer(data, dtype=dtype)
    return flat if dtype == np.uint8 else flat.astype(np.float64)


def _from_json(tensor: RequestInput, count: int, *, checked: bool) -> np.ndarray:
    if not isinstance(tensor.data, list):
        raise inputs.invalid([_DATA], f"must be an array, got {type(tensor.data).__name__}", "array_type")
    array = inputs.numbers(tensor.data)
    if array is None or not checked:
        inputs.first_non_number(tensor.data, [_DATA])
    if array is None:  # numbers all, but nested unevenly
        raise inputs.invalid(
            [_DATA], "must be an array of numbers, flat or nested as the shape", "array_type"
        )
    if array.ndim != 1 and list(array.shape) != tensor.shape:
        raise inputs.invalid(
            [_DATA],
            f"is nested as {list(array.shape)}; nest it as the shape {tensor.shape}, or flat",
            "shape",
        )
    if array.size != count:
        raise inputs.invalid(
            [_DATA], f"holds {array.size} values; shape {tensor.shape} needs {count}", "array_length"
        )
    flat = array.reshape(-1)
    if tensor.datatype == "UINT8":
        if flat.dtype.kind == "f":
            raise inputs.invalid([_DATA], "must hold integers 0-255 for datatype UINT8", "int_type")
        inputs.check_range(flat.reshape(1, -1), _DATA, batch=False, scale="pixel")
        return flat.astype(np.uint8, copy=False)
    if tensor.datatype == "FP32":
        return flat.astype(np.float32).astype(np.float64)  # what a 32-bit tensor holds
    return flat.astype(np.float64, copy=False)


def _without_data(document: dict[str, Any]) -> dict[str, Any]:
    """The request with a number for its tensors' data: what ``inputs.may_hide_non_numbers`` takes."""
    outside = {k: v for k, v in document.items() if k != "inputs"}
    tensors = document.get("inputs")
    if isinstance(tensors, list):
        outside["inputs"] = [
            {k: 0 if k == "data" else v for k, v in t.items()} if isinstance(t, dict) else t for t in tensors
        ]
    return outside


def _wanted(request: InferRequest) -> list[tuple[OutputName, bool]]:
    default_binary = request.parameters.binary_data_output
    if request.outputs is None:
        return [(name, default_binary) for name in OUTPUT_NAMES]
    return [
        (out.name, default_binary if out.parameters.binary_data is None else out.parameters.binary_data)
        for out in request.outputs
    ]


def encode_response(
    inference: Inference, probabilities: np.ndarray, *, model_name: str, model_version: int
) -> tuple[bytes, int | None]:
    """(the response body, the JSON's length when binary tensors follow it, else None)."""
    tensors = {
        "probabilities": ("FP32", probabilities.astype("<f4", copy=False)),
        "label": ("INT64", probabilities.argmax(axis=1).astype("<i8")),
    }
    outputs, binary = [], []
    for name, as_binary in inference.outputs:
        datatype, array = tensors[name]
        output: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if as_binary:
            raw = array.tobytes()
            output["parameters"] = {"binary_data_size": len(raw)}
            binary.append(raw)
        else:
            output["data"] = array.reshape(-1)
        outputs.append(output)
    document: dict[str, Any] = {"model_name": model_name, "model_version": str(model_version)}
    if inference.id is not None:
        document["id"] = inference.id
    document["outputs"] = outputs
    head = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not binary:
        return head, None
    return b"".join([head, *binary]), len(head)
