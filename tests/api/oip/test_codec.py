"""Infer requests a v2 client would not send, and how the service answers them: 400 (or the HTTP
status that fits), in the protocol's ``{"error": "message"}`` shape, naming the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest

from service.api.oip.codec import HEADER_LENGTH

URL = "/v2/models/mnist/infer"


def _tensor(**overrides) -> dict:
    return {"name": "pixels", "shape": [1, 784], "datatype": "UINT8", "data": [0] * 784, **overrides}


def _binary(tensor: dict, payload: bytes, *, header_length: int | str | None = None, **request) -> tuple:
    head = json.dumps({"inputs": [tensor], **request}).encode()
    length = len(head) if header_length is None else header_length
    return head + payload, {HEADER_LENGTH: str(length)}


def _error(response, status: int = 400) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert set(response.json) == {"error"} and isinstance(response.json["error"], str)
    return response.json["error"]


@pytest.mark.parametrize(
    ("tensor", "expected"),
    [
        (_tensor(data=[[0] * 392] * 2), "is nested as [2, 392]; nest it as the shape [1, 784], or flat"),
        (_tensor(data=[[0] * 392, [0] * 393]), "must be an array of numbers, flat or nested as the shape"),
        (_tensor(data=[0] * 783 + [1.5]), "must hold integers 0-255 for datatype UINT8"),
        (_tensor(data=[0] * 783 + [-1]), "inputs[0].data[783]: must be between 0 and 255"),
        (_tensor(data=[0] * 100 + [None] + [0] * 683), "inputs[0].data[100]: must be a number, got null"),
        (_tensor(data="AAAA"), "inputs[0].data: must be an array, got str"),
        (_tensor(shape=[1, 28, 28], data=[[[0] * 28] * 28] * 2), "nested as [2, 28, 28]"),
        (_tensor(shape=[0, 784], data=[]), "shape.0: Input should be greater than or equal to 1"),
        (_tensor(shape=[784]), "shape: List should have at least 2 items"),
        (_tensor(datatype="INT32"), "datatype: Input should be 'UINT8', 'FP32' or 'FP64'"),
        (_tensor(datatype="BYTES"), "datatype: Input should be 'UINT8', 'FP32' or 'FP64'"),
        (_tensor(data=None), "either in 'data' or as bytes with parameters.binary_data_size"),
        (_tensor(parameters={"shared_memory_region": "r"}), "shared-memory extension is not supported"),
        (_tensor(name="input__0"), "inputs.0.name: Input should be 'pixels'"),
    ],
)
def test_malformed_json_tensors(client, tensor, expected):
    assert expected in _error(client.post(URL, json={"inputs": [tensor]}))


def test_integers_beyond_64_bits(client):
    body = json.dumps({"inputs": [_tensor(datatype="FP64", data=[0] * 783 + [2**70])]})
    assert "inputs[0].data[0][783]: must be between 0 and 255" in _error(client.post(URL, data=body))


def test_booleans_among_numbers_are_found_even_when_the_request_has_its_own(client):
    request = {"inputs": [_tensor(data=[0] * 783 + [True])], "parameters": {"binary_data_output": True}}
    assert "inputs[0].data[783]: must be a number, got true" in _error(client.post(URL, json=request))
    request["inputs"] = [_tensor()]  # the request's own true alone is no alarm
    assert client.post(URL, json=request).status_code == 200


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        ({"inputs": [_tensor(), _tensor()]}, "inputs: List should have at most 1 item"),
        (
            {"inputs": [_tensor()], "outputs": [{"name": "label"}, {"name": "label"}]},
            "each output may be asked",
        ),
        ({"inputs": [_tensor()], "outputs": [{"name": "logits"}]}, "'probabilities' or 'label'"),
        (
            {"inputs": [_tensor()], "outputs": [{"name": "label", "parameters": {"classification": 2}}]},
            "classification extension is not supported",
        ),
        ({"inputs": [_tensor()], "parameters": {"binary_data_output": "yes"}}, "binary_data_output"),
        ({"inputs": [_tensor()], "model": "mnist"}, "model: Extra inputs are not permitted"),
        ({"inputs": [_tensor()], "id": "x" * 300}, "id: String should have at most 256 characters"),
    ],
)
def test_malformed_requests(client, request_body, expected):
    assert expected in _error(client.post(URL, json=request_body))


def test_a_body_that_is_not_a_json_object(client):
    assert "body is not valid JSON" in _error(client.post(URL, data=b"{"))
    assert "body: must be a JSON object, got list" in _error(client.post(URL, data=b"[]"))


def test_binary_sizes_must_add_up(client):
    pixels = np.arange(784, dtype=np.uint8).tobytes()
    good = _tensor(data=None, parameters={"binary_data_size": 784})
    body, headers = _binary(good, pixels)
    assert client.post(URL, data=body, headers=headers).status_code == 200

    body, headers = _binary(good, pixels + b"\0")
    assert "is 784, but 785 bytes follow the JSON" in _error(client.post(URL, data=body, headers=headers))
    wrong = _tensor(data=None, datatype="FP32", parameters={"binary_data_size": 784})
    body, headers = _binary(wrong, pixels)
    assert "shape [1, 784] of FP32 needs 3136" in _error(client.post(URL, data=body, headers=headers))
    body, headers = _binary(_tensor(), pixels)  # bytes after JSON data that no input claims
    assert "784 bytes after the JSON, which no input claims" in _error(
        client.post(URL, data=body, headers=headers)
    )


@pytest.mark.parametrize("length", ["0", "-3", "ten", "999999", "7\u00b2", "\u00b3"])
def test_the_header_length_must_lie_within_the_body(client, length):
    body, headers = _binary(
        _tensor(data=None, parameters={"binary_data_size": 784}), bytes(784), header_length=length
    )
    assert HEADER_LENGTH in _error(client.post(URL, data=body, headers=headers))


def test_binary_floats_are_read_little_endian(client, real_digits):
    image = real_digits[0][:1].astype(np.float64)
    expected = client.post("/predict", json={"pixels": image[0].tolist()}).json["predictions"][0]["label"]
    tensor = _tensor(data=None, datatype="FP64", parameters={"binary_data_size": 784 * 8})
    body, headers = _binary(tensor, image.astype("<f8").tobytes(), outputs=[{"name": "label"}])
    response = client.post(URL, data=body, headers=headers)
    assert response.status_code == 200 and response.json["outputs"][0]["data"] == [expected]
    body, headers = _binary(tensor, np.full(784, np.inf, "<f8").tobytes())
    assert "inputs[0].data[0][0]: must be a finite number, got inf" in _error(
        client.post(URL, data=body, headers=headers)
    )


def test_http_errors_under_v2_answer_in_the_protocols_shape(client, make_client):
    assert "not found" in _error(client.get("/v2/no/such/route"), 404)
    assert "not allowed" in _error(client.get(URL), 405)
    assert "Content-Encoding" in _error(
        client.post(URL, data=b"x", headers={"Content-Encoding": "gzip"}), 415
    )
    small = make_client(max_body_mb=0.001)
    assert _error(small.post(URL, data=b"0" * 2048), 413)
    # ... while the rest of the API keeps its own shape
    assert client.get("/no/such/route").json["error"]["code"] == "not_found"


def test_a_damaged_version_is_a_503(client, store_dir):
    (store_dir / "mnist" / "v1.npz").write_bytes(b"not a model")
    assert "mnist" in _error(client.post(URL, json={"inputs": [_tensor()]}), 503)
    assert _error(client.get("/v2/models/mnist/ready"), 503)
    assert _error(client.get("/v2/health/ready"), 503)
