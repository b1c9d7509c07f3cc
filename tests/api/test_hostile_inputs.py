"""A corpus of hostile requests: each gets a documented 4xx in the JSON error shape, never a 500,
and the service is healthy afterwards."""

import json

import pytest

ROW = ",".join(["0"] * 783)

CASES = [
    # (method, path, body, content type, extra headers, status, error code)
    ("post", "/predict", "[" * 50_000 + "]" * 50_000, "application/json", {}, 422, "validation_error"),
    (
        "post",
        "/predict",
        '{"pixels": [1' + "0" * 400 + f",{ROW}]}}",
        "application/json",
        {},
        422,
        "validation_error",
    ),
    ("post", "/predict", f'{{"pixels": [{ROW},1e400]}}', "application/json", {}, 422, "validation_error"),
    ("post", "/predict", f'{{"pixels": [{ROW},NaN]}}', "application/json", {}, 422, "validation_error"),
    ("post", "/predict", f'{{"pixels": [{ROW},-Infinity]}}', "application/json", {}, 422, "validation_error"),
    ("post", "/predict", f'{{"pixels": [{ROW},"7"]}}', "application/json", {}, 422, "validation_error"),
    ("post", "/predict", f'{{"pixels": [{ROW},null]}}', "application/json", {}, 422, "validation_error"),
    ("post", "/predict", f'{{"pixels": [{ROW},true]}}', "application/json", {}, 422, "validation_error"),
    ("post", "/predict", '{"pixels": [0, 0]}', "application/json", {}, 422, "validation_error"),
    ("post", "/predict", '{"instances": []}', "application/json", {}, 422, "validation_error"),
    ("post", "/predict", "{}", "application/json", {}, 422, "validation_error"),
    ("post", "/predict", b'{"pixels": "\xff\xfe"}', "application/json", {}, 422, "validation_error"),
    ("post", "/predict", b"\x00" * 784, "text/plain", {}, 415, "unsupported_media_type"),
    (
        "post",
        "/predict",
        b"\x1f\x8b\x08",
        "application/json",
        {"Content-Encoding": "gzip"},
        415,
        "unsupported_media_type",
    ),
    ("post", "/predict", b"\x00" * 785, "application/octet-stream", {}, 422, "validation_error"),
    (
        "post",
        "/predict?model=../../etc",
        b"\x00" * 784,
        "application/octet-stream",
        {},
        422,
        "validation_error",
    ),
    (
        "post",
        "/predict?model=%C3%A9t%C3%A9",
        b"\x00" * 784,
        "application/octet-stream",
        {},
        422,
        "validation_error",
    ),
    (
        "post",
        "/predict",
        f'{{"pixels": [{ROW},0], "model": "a..b"}}',
        "application/json",
        {},
        422,
        "validation_error",
    ),
    ("get", "/jobs?offset=9223372036854775808", None, None, {}, 422, "validation_error"),
    ("get", "/jobs?limit=-1", None, None, {}, 422, "validation_error"),
    ("get", "/models/..%2F..%2Fetc", None, None, {}, 404, "not_found"),
    ("post", "/train", '{"make_default": "yes"}', "application/json", {}, 422, "validation_error"),
    ("post", "/train", '{"epochs": true}', "application/json", {}, 422, "validation_error"),
    ("post", "/train", '{"epochs": 1e400}', "application/json", {}, 422, "validation_error"),
    ("post", "/train", '{"model": "a..b"}', "application/json", {}, 422, "validation_error"),
    ("put", "/models/mnist/default", '{"version": "1"}', "application/json", {}, 422, "validation_error"),
    ("delete", "/predict", None, None, {}, 405, "method_not_allowed"),
]


@pytest.mark.parametrize("method,path,body,content_type,headers,status,code", CASES)
def test_hostile_request_gets_a_documented_4xx(
    client, method, path, body, content_type, headers, status, code
):
    response = getattr(client, method)(path, data=body, content_type=content_type, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    assert client.get("/healthz").status_code == 200


def test_validation_errors_name_field_and_index(client):
    body = json.dumps({"instances": [[0] * 784, [0] * 783 + [10**400]]})
    details = client.post("/predict", data=body, content_type="application/json").get_json()["error"][
        "details"
    ]
    assert details[0]["loc"] == ["instances", 1, 783] and details[0]["type"] == "finite_number"
