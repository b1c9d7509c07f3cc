"""The fast lane (service.api.fast_lane) answers what the Flask app would, byte for byte, and
hands the app every request it does not take, and every one that fails."""

import json
import logging

import numpy as np
import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app

from service.api.fast_lane import FastLane

JSON, RAW = "application/json", "application/octet-stream"


def _lane(app) -> FastLane:
    lane = app.wsgi_app.app  # BoundedBody(FastLane(...))
    assert isinstance(lane, FastLane)
    return lane


def _watch(lane: FastLane) -> tuple:
    """The Flask app behind ``lane``, and a list that gets (path, bytes of the body already read)
    for every request the lane hands to it."""
    flask, handed = lane.app, []

    def app(environ, start_response):
        handed.append((environ["PATH_INFO"], environ["wsgi.input"].tell()))
        return flask(environ, start_response)

    lane.app = app
    return flask, handed


def _call(wsgi, path, body, content_type, headers=None, query=None):
    environ = EnvironBuilder(
        path=path,
        method="POST",
        data=body,
        content_type=content_type,
        headers=headers or {},
        query_string=query,
    ).get_environ()
    output, status, answer_headers = run_wsgi_app(wsgi, environ)
    return status, b"".join(output), {k: v for k, v in answer_headers.items() if k != "X-Request-ID"}


def _binary_infer(images: np.ndarray, *, binary_output: bool) -> tuple[bytes, dict]:
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "shape": list(images.shape),
                    "datatype": "UINT8",
                    "parameters": {"binary_data_size": images.size},
                }
            ],
            "parameters": {"binary_data_output": binary_output},
        }
    ).encode()
    return head + images.tobytes(), {"Inference-Header-Content-Length": str(len(head))}


def _requests(images: np.ndarray):
    one, three = images[:1], images[:3]
    yield "/predict", json.dumps({"pixels": one[0].tolist()}).encode(), JSON, {}
    yield "/predict", json.dumps({"instances": three.tolist(), "model": "mnist"}).encode(), JSON, {}
    yield "/predict", json.dumps({"instances": (three / 255).tolist(), "scale": "unit"}).encode(), JSON, {}
    named = json.dumps({"pixels": one[0].tolist(), "version": 1}).encode()
    yield "/predict", named, JSON + "; charset=utf-8", {}
    yield "/predict", three.tobytes(), RAW, {}
    tensor = {"name": "pixels", "shape": [3, 28, 28], "datatype": "FP32", "data": three.ravel().tolist()}
    infer = json.dumps({"id": "r1", "inputs": [tensor], "outputs": [{"name": "label"}]}).encode()
    yield "/v2/models/mnist/infer", infer, JSON, {}
    yield "/v2/models/mnist/versions/1/infer", infer, JSON, {}
    for binary_output in (False, True):
        body, headers = _binary_infer(three, binary_output=binary_output)
        yield "/v2/models/mnist/infer", body, RAW, headers


def test_the_lane_answers_what_the_app_answers(app, real_digits):
    lane = _lane(app)
    flask, handed = _watch(lane)
    for path, body, content_type, headers in _requests(real_digits[0].astype(np.uint8)):
        by_lane = _call(lane, path, body, content_type, headers)
        assert not handed, f"the lane handed {path} to the app"
        by_app = _call(flask, path, body, content_type, headers)
        assert by_lane == by_app, path
        assert by_lane[0] == "200 OK"


@pytest.mark.parametrize(
    ("path", "body", "content_type", "headers", "query"),
    [
        ("/predict", b'{"pixels": [1, 2]}', JSON, {}, None),  # an error: the app's to say
        ("/predict", b'{"pixels": [0, true' + b", 0" * 782 + b"]}", JSON, {}, None),
        ("/predict", b"\x00" * 784, RAW, {}, "model=mnist"),  # a query string
        ("/predict", b"\x00" * 784, RAW, {"Content-Encoding": "gzip"}, None),
        ("/predict", b"\x00" * 784, "text/plain", {}, None),
        ("/v2/models/no-such-model/infer", b"{}", JSON, {}, None),
        ("/v2/models/mnist/versions/01/infer", b"{}", JSON, {}, None),  # the app's rule decides
        ("/v2/models/mnist/infer", b"\x00" * 10, RAW, {"Inference-Header-Content-Length": "99"}, None),
    ],
)
def test_what_the_lane_does_not_answer_the_app_does(app, path, body, content_type, headers, query):
    lane = _lane(app)
    flask, handed = _watch(lane)
    by_lane = _call(lane, path, body, content_type, headers, query)
    assert len(handed) == 1
    assert by_lane == _call(flask, path, body, content_type, headers, query)


def test_a_length_that_is_not_ascii_digits_goes_to_the_app(app):
    lane = _lane(app)
    _, handed = _watch(lane)
    builder = EnvironBuilder(path="/predict", method="POST", data=b"\x00" * 784, content_type=RAW)
    environ = builder.get_environ()
    environ["CONTENT_LENGTH"] = "7\u00b2"
    output, status, _ = run_wsgi_app(lane, environ)
    assert len(handed) == 1 and not status.startswith("5")


def test_a_body_over_the_limit_is_left_unread_for_the_app_to_refuse(make_client):
    app = make_client(max_body_mb=0.001).application
    lane = _lane(app)
    _, handed = _watch(lane)
    status, body, _ = _call(lane, "/predict", b"\x00" * 2 * 784, RAW)
    assert handed == [("/predict", 0)]  # not a byte read by the lane
    assert status.startswith("413") and json.loads(body)["error"]["code"] == "request_entity_too_large"


def test_the_lane_counts_logs_and_names_its_requests(client, real_digits, caplog):
    pixels = real_digits[0][0].astype(np.uint8).tobytes()
    with caplog.at_level(logging.INFO, logger="service.access"):
        answer = client.post("/predict", data=pixels, content_type=RAW, headers={"X-Request-ID": "abc-1"})
        client.post("/v2/models/mnist/versions/1/infer", data=b"{}", content_type=JSON)
    assert answer.status_code == 200 and answer.headers["X-Request-ID"] == "abc-1"
    lines = [r.getMessage() for r in caplog.records if r.name == "service.access"]
    assert lines[0].startswith('abc-1 "POST /predict" 200 ')
    assert '"POST /v2/models/mnist/versions/1/infer" 400' in lines[1]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'backprop_http_requests_total{endpoint="/predict",method="POST",status="200"} 1.0' in metrics
    assert 'endpoint="/v2/models/<name>/versions/<int:version>/infer",method="POST",status="400"' in metrics
    assert 'backprop_predicted_images_total{model="mnist",version="1"} 1.0' in metrics
