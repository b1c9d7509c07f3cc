"""The protocol's model repository extension, driven by tritonclient's unmodified
``get_model_repository_index``, ``load_model(files=...)`` and ``unload_model`` over real HTTP."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from pydantic import SecretStr

from tests.conftest import TOKEN
from tests.model_files import good_model, hostile_corpus

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def app_settings(app_settings):
    return app_settings.model_copy(update={"api_token": SecretStr(TOKEN)})


@pytest.fixture
def v2(served):
    """tritonclient's HTTP client on the served app (the dev extra's; the quick tier skips these)."""
    triton = pytest.importorskip("tritonclient.http")
    client = triton.InferenceServerClient(served, network_timeout=30.0)
    yield client
    client.close()


@pytest.fixture
def refused():
    """``pytest.raises`` of tritonclient's error, matching the server's message."""
    error = pytest.importorskip("tritonclient.utils").InferenceServerException
    return lambda words: pytest.raises(error, match=words)


def _labels(v2, model: str, pixels: np.ndarray) -> np.ndarray:
    from tritonclient.http import InferInput

    tensor = InferInput("pixels", list(pixels.shape), "UINT8")
    tensor.set_data_from_numpy(pixels, binary_data=True)
    return v2.infer(model, [tensor]).as_numpy("label")


def test_load_with_files_unload_and_load_again(v2, refused, real_digits, shipped_store):
    pixels = real_digits[0][:100]
    seed_file = (shipped_store / "mnist" / "v1.npz").read_bytes()
    v2.load_model(
        "moved",
        headers=AUTH,
        config='{"description": "the seed, moved"}',
        files={"file:1/model.npz": seed_file},
    )
    assert {"name": "moved", "version": "1", "state": "READY", "reason": ""} in v2.get_model_repository_index(
        headers=AUTH
    )
    assert v2.is_model_ready("moved")
    np.testing.assert_array_equal(_labels(v2, "moved", pixels), _labels(v2, "mnist", pixels))
    assert "model_repository" in v2.get_server_metadata()["extensions"]

    v2.unload_model("moved", headers=AUTH)
    index = v2.get_model_repository_index(headers=AUTH)
    assert {"name": "moved", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"} in index
    with refused("unloaded"):
        _labels(v2, "moved", pixels)
    assert not v2.is_model_ready("moved")
    assert v2.is_server_ready()  # the service's default still serves

    v2.load_model("moved", headers=AUTH)  # no files: serve it again, the files were kept
    np.testing.assert_array_equal(_labels(v2, "moved", pixels), _labels(v2, "mnist", pixels))
    v2.load_model("moved", headers=AUTH, files={"file:2/model.npz": good_model()})
    assert [e["version"] for e in v2.get_model_repository_index(headers=AUTH) if e["name"] == "moved"] == [
        "1",
        "2",
    ]


def test_management_needs_the_token_and_refuses_what_it_cannot_do(v2, refused):
    with refused("Bearer"):
        v2.get_model_repository_index()
    with refused("Bearer"):
        v2.unload_model("mnist")
    with refused("default model"):
        v2.unload_model("mnist", headers=AUTH)
    with refused("no model named"):
        v2.unload_model("nothing", headers=AUTH)
    with refused("no model named"):
        v2.load_model("nothing", headers=AUTH)
    with refused("one model file"):
        v2.load_model("x", headers=AUTH, config="{}", files={"file:1/model.onnx": b"onnx"})
    with refused("NaN"):
        v2.load_model(
            "x", headers=AUTH, config="{}", files={"file:1/model.npz": hostile_corpus()["NaN weights"][0]}
        )
    assert {e["name"] for e in v2.get_model_repository_index(headers=AUTH)} == {"mnist"}  # nothing was added


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"parameters": {"file:1/model.npz": "not base64!"}}, 400, "not base64"),
        ({"parameters": {"file:1/model.npz": 12}}, 400, "valid string"),
        ({"parameters": {"config": "[1]", "file:1/model.npz": ""}}, 400, "JSON object"),
        ({"parameters": {"config": '{"make_default": "perhaps"}'}}, 400, "make_default"),
        ({"parameters": {"config": '{"make_default": "yes"}'}}, 400, "make_default"),
        ({"parameters": {"a": "1"}, "extra": 1}, 400, "extra"),
        ([], 400, "JSON object"),
    ],
)
def test_load_requests_that_do_not_fit(client, body, status, words):
    answer = client.post("/v2/repository/models/x/load", json=body, headers=AUTH)
    assert answer.status_code == status and words in answer.get_json()["error"], answer.get_json()
    assert client.post("/v2/repository/index", json={"ready": "yes"}, headers=AUTH).status_code == 400


def test_the_index_of_ready_versions_leaves_out_unloaded_models(client):
    client.post(
        "/models/other/versions",
        data=good_model(),
        headers={**AUTH, "Content-Type": "application/octet-stream"},
    )
    assert client.post("/v2/repository/models/other/unload", headers=AUTH).status_code == 200
    everything = client.post("/v2/repository/index", headers=AUTH).get_json()
    ready = client.post("/v2/repository/index", json={"ready": True}, headers=AUTH).get_json()
    assert {e["name"] for e in everything} == {"mnist", "other"} and {e["name"] for e in ready} == {"mnist"}
    refused = client.post("/v2/models/other/infer", json={"inputs": []}, headers=AUTH)
    assert refused.status_code == 503 and "unloaded" in refused.get_json()["error"]
    assert client.post("/predict", json={"pixels": [0] * 784, "model": "other"}).status_code == 503
    assert (
        client.get("/models/other").get_json()["unloaded"]
        and not client.get("/models/mnist").get_json()["unloaded"]
    )


def test_a_load_over_the_model_limit_is_413(make_client):
    small = make_client(max_model_mb=0.01, api_token=TOKEN)
    encoded = base64.b64encode(good_model()).decode()
    answer = small.post(
        "/v2/repository/models/x/load", json={"parameters": {"file:1/model.npz": encoded}}, headers=AUTH
    )
    assert answer.status_code == 413 and "BACKPROP_MAX_MODEL_MB" in answer.get_json()["error"]


@pytest.mark.parametrize("path", ["/v2/repository/index", "/v2/repository/models/mnist/load"])
def test_an_empty_body_is_the_defaults_and_one_of_whitespace_is_refused(client, path):
    empty = client.post(path, data=b"", content_type="application/json", headers=AUTH)
    assert empty.status_code == 200, empty.get_json()
    for blank in (b" ", b"\r\n\t"):
        refused = client.post(path, data=blank, content_type="application/json", headers=AUTH)
        assert refused.status_code == 400 and "JSON" in refused.get_json()["error"], refused.get_json()
