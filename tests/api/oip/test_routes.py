"""The Open Inference Protocol (v2), driven by NVIDIA's own, unmodified HTTP client over real HTTP."""

from __future__ import annotations

import numpy as np
import pytest

from service.nn.network import MLP, ModelSpec
from service.store import ModelStore

# The dev extra's unmodified client; the quick tier (test extra only) skips this module.
triton = pytest.importorskip("tritonclient.http")
InferenceServerException = pytest.importorskip("tritonclient.utils").InferenceServerException


@pytest.fixture
def v2(served):
    client = triton.InferenceServerClient(served, network_timeout=30.0)
    yield client
    client.close()


def _pixels(datatype: str, shape: list[int], array: np.ndarray, *, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("pixels", shape, datatype)
    return tensor.set_data_from_numpy(array.reshape(shape), binary_data=binary)


def _predict_labels(client, images: np.ndarray, **query) -> list[int]:
    response = client.post("/predict", json={"instances": images.tolist(), **query})
    assert response.status_code == 200, response.json
    return [p["label"] for p in response.json["predictions"]]


def test_health_and_server_metadata(v2):
    assert v2.is_server_live() and v2.is_server_ready()
    meta = v2.get_server_metadata()
    assert meta["name"] == "backprop-service" and "binary_tensor_data" in meta["extensions"]


def test_model_metadata_and_readiness(v2):
    meta = v2.get_model_metadata("mnist")
    assert meta["name"] == "mnist" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "pixels", "datatype": "UINT8", "shape": [-1, 784]}]
    assert {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]} == {
        "probabilities": ("FP32", [-1, 10]),
        "label": ("INT64", [-1]),
    }
    assert v2.get_model_metadata("mnist", "1")["versions"] == ["1"]
    assert v2.is_model_ready("mnist") and v2.is_model_ready("mnist", "1")
    assert not v2.is_model_ready("mnist", "7") and not v2.is_model_ready("no-such-model")


@pytest.mark.parametrize(
    ("datatype", "shape", "binary_in", "binary_out"),
    [
        ("UINT8", [32, 784], False, False),
        ("UINT8", [32, 784], True, True),
        ("FP32", [32, 28, 28], True, False),
        ("FP32", [32, 784], False, True),
        ("FP64", [32, 28, 28], True, True),
    ],
)
def test_labels_equal_predicts_in_json_and_in_binary(
    v2, client, real_digits, datatype, shape, binary_in, binary_out
):
    images, truth = real_digits[0][:32], real_digits[1][:32]
    dtype = {"UINT8": np.uint8, "FP32": np.float32, "FP64": np.float64}[datatype]
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary_out) for name in ("label", "probabilities")
    ]
    result = v2.infer(
        "mnist", [_pixels(datatype, shape, images.astype(dtype), binary=binary_in)], outputs=outputs
    )
    labels, probabilities = result.as_numpy("label"), result.as_numpy("probabilities")
    assert labels.dtype == np.int64 and labels.shape == (32,)
    assert probabilities.dtype == np.float32 and probabilities.shape == (32, 10)
    assert labels.tolist() == _predict_labels(client, images)
    assert (labels == truth).mean() > 0.9
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    predicted = client.post("/predict", json={"instances": images.tolist()}).json["predictions"]
    np.testing.assert_allclose(probabilities, [p["probabilities"] for p in predicted], rtol=1e-5, atol=1e-7)
    response = result.get_response()
    assert response["model_name"] == "mnist" and response["model_version"] == "1"


def test_the_client_default_asks_for_every_output_in_binary(v2, real_digits):
    images = real_digits[0][:3]
    result = v2.infer("mnist", [_pixels("UINT8", [3, 784], images, binary=True)], request_id="req-42")
    response = result.get_response()
    assert response["id"] == "req-42"
    assert {o["name"]: o["parameters"]["binary_data_size"] for o in response["outputs"]} == {
        "probabilities": 3 * 10 * 4,
        "label": 3 * 8,
    }
    assert result.as_numpy("label").tolist() == result.as_numpy("probabilities").argmax(axis=1).tolist()


def test_a_subset_of_the_outputs(v2, real_digits):
    images = real_digits[0][:2]
    result = v2.infer(
        "mnist",
        [_pixels("UINT8", [2, 784], images, binary=False)],
        outputs=[triton.InferRequestedOutput("label", binary_data=False)],
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label"]
    assert result.as_numpy("probabilities") is None and result.as_numpy("label").shape == (2,)


def test_a_named_version(v2, client, app_settings, real_digits):
    # A second, untrained version: its labels differ from the default's, so a mix-up would show.
    spec = ModelSpec(hidden=[16])
    saved = ModelStore(app_settings.model_store).save("mnist", MLP.initialize(spec, np.random.default_rng(3)))
    assert saved["version"] == 2
    images = real_digits[0][:64]
    for version in ("2", "1"):
        result = v2.infer("mnist", [_pixels("UINT8", [64, 784], images, binary=True)], model_version=version)
        assert result.get_response()["model_version"] == version
        assert result.as_numpy("label").tolist() == _predict_labels(client, images, version=int(version))
    default = v2.infer("mnist", [_pixels("UINT8", [1, 784], images[:1], binary=True)])
    assert default.get_response()["model_version"] == "1"  # the model's default is still version 1
    assert v2.get_model_metadata("mnist")["versions"] == ["1", "2"]


def _error(call) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((1, 784), 300.0, np.float32), "must be between 0 and 255"),
        (np.full((1, 784), np.nan, np.float32), "must be a finite number, got nan"),
    ],
)
@pytest.mark.parametrize("binary", [False, True])
def test_a_bad_request_is_a_400_that_names_the_problem(v2, array, message, binary):
    error = _error(lambda: v2.infer("mnist", [_pixels("FP32", [1, 784], array, binary=binary)]))
    assert error.status() == "400" and message in error.message()
    assert "inputs[0].data" in error.message()


def test_a_shape_that_is_not_an_image_is_a_400(v2):
    error = _error(
        lambda: v2.infer("mnist", [_pixels("UINT8", [2, 392], np.zeros((2, 392), np.uint8), binary=True)])
    )
    assert error.status() == "400" and "392 pixels per image" in error.message()


def test_an_unknown_model_or_version_is_a_404(v2):
    pixels = _pixels("UINT8", [1, 784], np.zeros((1, 784), np.uint8), binary=True)
    error = _error(lambda: v2.infer("no-such-model", [pixels]))
    assert error.status() == "404" and "no-such-model" in error.message()
    error = _error(lambda: v2.infer("mnist", [pixels], model_version="9"))
    assert error.status() == "404" and "no version 9" in error.message()
    assert _error(lambda: v2.get_model_metadata("no-such-model")).status() == "404"


def test_more_images_than_the_limit_is_a_400(make_client, app_settings):
    client = make_client(max_batch=4)
    body = {"inputs": [{"name": "pixels", "shape": [5, 784], "datatype": "UINT8", "data": [0] * 5 * 784}]}
    response = client.post("/v2/models/mnist/infer", json=body)
    assert response.status_code == 400
    assert response.json == {"error": "inputs[0].shape: holds 5 images; at most 4 per request"}


def test_v2_is_counted_in_metrics_and_listed_in_the_document(v2, client, real_digits):
    v2.infer("mnist", [_pixels("UINT8", [5, 784], real_digits[0][:5], binary=True)])
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'endpoint="/v2/models/<name>/infer",method="POST",status="200"' in metrics
    assert 'backprop_predicted_images_total{model="mnist",version="1"} 5.0' in metrics
    paths = client.get("/openapi.json").json["paths"]
    for path in (
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    ):
        assert path in paths, path
    body = paths["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    # The binary extension is described, not given a schema that would admit any bytes.
    assert set(body) == {"application/json"}
    assert "Inference-Header-Content-Length" in paths["/v2/models/{name}/infer"]["post"]["description"]
