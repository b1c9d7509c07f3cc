"""Uploads, downloads and ONNX exports through the API: the contract, and a hostile corpus of
model files that must each be refused by name, leave no file behind, and leave the service whole."""

from __future__ import annotations

import base64
import hashlib
import io
import json

import numpy as np
import pytest
import requests

from service.api.state import service_state
from service.api.transfer import QUERY_TEXT_MAX_LENGTH
from service.front import HEADER_BUFFER
from service.names import NAME_MAX_LENGTH
from service.repository import TEXT_MAX_LENGTH
from service.wire import REQUEST_LINE_MAX
from tests.conftest import TOKEN
from tests.model_files import WIDE, good_model, hostile_corpus

BLANK = {"pixels": [0] * 784}
OCTETS = "application/octet-stream"


def _store_files(app) -> set[str]:
    root = service_state(app).store.root
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_an_upload_is_a_new_version_that_says_where_it_came_from(client, app):
    data = good_model(seed=3)
    answer = client.post(
        "/models/digits/versions?description=from%20my%20laptop&training_source=git%40example:x",
        data=data,
        content_type=OCTETS,
    )
    assert answer.status_code == 201, answer.get_json()
    meta = answer.get_json()
    assert answer.headers["Location"] == "/models/digits/versions/1"
    assert meta["source"] == "upload" and meta["description"] == "from my laptop"
    assert meta["training_source"] == "git@example:x"
    assert meta["sha256"] == hashlib.sha256(data).hexdigest() and meta["size_bytes"] == len(data)
    assert meta["spec"]["hidden"] == [16] and meta["is_default"]  # the model's only version
    sidecar = json.loads(service_state(app).store.version_path("digits", 1, ".json").read_text())
    assert sidecar["source"] == "upload"
    # The service's default is untouched: nothing becomes a default unless asked.
    assert client.post("/predict", json=BLANK).get_json()["model"] == {"name": "mnist", "version": 1}
    assert client.get("/models/digits/versions/1").get_json()["source"] == "upload"


def test_a_multipart_upload_with_metadata_can_become_the_default(client):
    metadata = json.dumps({"make_default": True, "description": "v2 of the seed"})
    answer = client.post(
        "/models/mnist/versions",
        data={"file": (io.BytesIO(good_model(seed=4)), "model.npz"), "metadata": metadata},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["version"] == 2 and answer.get_json()["is_default"]
    assert client.post("/predict", json=BLANK).get_json()["model"] == {"name": "mnist", "version": 2}
    missing = client.post(
        "/models/mnist/versions", data={"metadata": "{}"}, content_type="multipart/form-data"
    )
    assert missing.status_code == 422 and "'file'" in missing.get_json()["error"]["message"]
    bad = client.post(
        "/models/mnist/versions",
        data={"file": (io.BytesIO(good_model()), "m.npz"), "metadata": '{"colour": 1}'},
        content_type="multipart/form-data",
    )
    assert bad.status_code == 422 and "colour" in json.dumps(bad.get_json())


def test_the_flag_is_text_in_the_query_and_a_json_boolean_in_the_metadata_part(client):
    in_query = client.post(
        "/models/mnist/versions?make_default=true",
        data=good_model(seed=4),
        content_type="application/octet-stream",
    )
    assert in_query.status_code == 201 and in_query.get_json()["is_default"], in_query.get_json()
    for said in ('"yes"', '"true"', "1"):
        refused = client.post(
            "/models/mnist/versions",
            data={"file": (io.BytesIO(good_model()), "m.npz"), "metadata": f'{{"make_default": {said}}}'},
            content_type="multipart/form-data",
        )
        assert refused.status_code == 422, refused.get_json()
        assert refused.get_json()["error"]["details"][0]["loc"] == ["make_default"]
    model = client.get("/models/mnist").get_json()
    assert [v["version"] for v in model["versions"]] == [1, 2] and model["default_version"] == 2


def test_the_longest_valid_query_fits_the_request_line_the_front_reads():
    line = requests.Request(
        "POST",
        f"http://127.0.0.1/models/{'a' * NAME_MAX_LENGTH}/versions",
        params={
            "description": WIDE * QUERY_TEXT_MAX_LENGTH,
            "training_source": WIDE * QUERY_TEXT_MAX_LENGTH,
            "make_default": "false",
        },
    ).prepare()
    assert len(f"POST {line.path_url} HTTP/1.1".encode()) <= REQUEST_LINE_MAX
    assert int(HEADER_BUFFER.removesuffix("k")) * 1024 >= REQUEST_LINE_MAX + 2  # nginx's, with CRLF


def test_text_options_are_shorter_in_the_query_than_in_the_metadata_part(client):
    at_most = client.post(
        "/models/digits/versions",
        query_string={"description": WIDE * QUERY_TEXT_MAX_LENGTH},
        data=good_model(),
        content_type=OCTETS,
    )
    assert at_most.status_code == 201 and at_most.get_json()["description"] == WIDE * QUERY_TEXT_MAX_LENGTH
    over = client.post(
        "/models/digits/versions",
        query_string={"training_source": WIDE * (QUERY_TEXT_MAX_LENGTH + 1)},
        data=good_model(),
        content_type=OCTETS,
    )
    error = over.get_json()["error"]
    assert over.status_code == 422 and error["details"][0]["loc"][-1] == "training_source", error
    operation = client.get("/openapi.json").get_json()["paths"]["/models/{name}/versions"]["post"]
    query = {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "query"}
    assert {name: query[name]["anyOf"][0]["maxLength"] for name in ("description", "training_source")} == {
        "description": QUERY_TEXT_MAX_LENGTH,
        "training_source": QUERY_TEXT_MAX_LENGTH,
    }
    longest = json.dumps({"description": WIDE * TEXT_MAX_LENGTH, "training_source": WIDE * TEXT_MAX_LENGTH})
    answer = client.post(
        "/models/digits/versions",
        data={"file": (io.BytesIO(good_model()), "m.npz"), "metadata": longest},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 201 and answer.get_json()["training_source"] == WIDE * TEXT_MAX_LENGTH
    too_long = json.dumps({"description": "x" * (TEXT_MAX_LENGTH + 1)})
    refused = client.post(
        "/models/digits/versions",
        data={"file": (io.BytesIO(good_model()), "m.npz"), "metadata": too_long},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422 and "description" in json.dumps(refused.get_json())


def test_numbers_are_never_reused_by_uploads(client):
    for expected in (2, 3):
        assert (
            client.post("/models/mnist/versions", data=good_model(), content_type=OCTETS).get_json()[
                "version"
            ]
            == expected
        )
    assert client.delete("/models/mnist/versions/3").status_code == 204
    again = client.post("/models/mnist/versions", data=good_model(), content_type=OCTETS)
    assert again.get_json()["version"] == 4


@pytest.mark.parametrize("case", sorted(hostile_corpus()))
def test_hostile_model_files_are_refused_by_name(client, app, case):
    data, words = hostile_corpus()[case]
    before = _store_files(app)
    answer = client.post("/models/mnist/versions", data=data, content_type=OCTETS)
    assert answer.status_code == 422, (case, answer.get_json())
    message = answer.get_json()["error"]["message"]
    assert message.startswith("the uploaded file: ") and words in message, message
    assert _store_files(app) == before  # nothing left behind, not even a temporary file
    assert client.get("/readyz").status_code == 200
    assert client.post("/predict", json=BLANK).status_code == 200


def test_the_rest_of_the_hostile_requests(client, make_client):
    assert client.post("/models/a..b/versions", data=good_model(), content_type=OCTETS).status_code == 422
    assert (
        client.post("/models/mnist/versions", data=good_model(), content_type="text/plain").status_code == 415
    )
    guarded = make_client(api_token=TOKEN)
    assert guarded.post("/models/mnist/versions", data=good_model(), content_type=OCTETS).status_code == 401
    wrong = {"Authorization": "Bearer wrong-token-0123456789"}
    assert (
        guarded.post("/models/x/versions", data=good_model(), content_type=OCTETS, headers=wrong).status_code
        == 401
    )
    assert guarded.get("/models/mnist/versions/1/file").status_code == 401
    small = make_client(max_model_mb=0.5)
    too_big = small.post("/models/mnist/versions", data=good_model(hidden=(256,)), content_type=OCTETS)
    assert too_big.status_code == 413 and "BACKPROP_MAX_MODEL_MB" in too_big.get_json()["error"]["message"]
    assert too_big.get_json()["error"]["code"] == "model_too_large"


def test_a_download_is_the_stored_file_with_its_digest(client, app):
    answer = client.get("/models/mnist/versions/1/file")
    assert answer.status_code == 200 and answer.mimetype == OCTETS
    stored = service_state(app).store.version_path("mnist", 1, ".npz").read_bytes()
    assert answer.data == stored
    digest = base64.b64encode(hashlib.sha256(stored).digest()).decode()
    assert answer.headers["Repr-Digest"] == f"sha-256=:{digest}:"
    assert 'filename="mnist-v1.npz"' in answer.headers["Content-Disposition"]
    assert client.get("/models/mnist/versions/9/file").status_code == 404
    # Uploading what was downloaded gives a version with the same bytes, hence the same answers.
    copy = client.post("/models/copy/versions", data=answer.data, content_type=OCTETS).get_json()
    assert copy["sha256"] == hashlib.sha256(stored).hexdigest()
    pixels = {"instances": np.random.default_rng(0).integers(0, 256, (20, 784)).tolist()}
    original = client.post("/predict", json=pixels).get_json()["predictions"]
    moved = client.post("/predict", json={**pixels, "model": "copy"}).get_json()["predictions"]
    assert moved == original


def test_a_damaged_file_is_not_handed_out(client, app):
    path = service_state(app).store.version_path("mnist", 1, ".npz")
    path.write_bytes(path.read_bytes()[:-10])
    answer = client.get("/models/mnist/versions/1/file")
    assert answer.status_code == 503 and "sha256" in answer.get_json()["error"]["message"]


def test_retention_keeps_the_newest_and_never_the_default_or_the_seed(client):
    assert client.get("/models/mnist/retention").get_json() == {"keep_latest": None}
    for _ in range(3):
        client.post("/models/mnist/versions", data=good_model(), content_type=OCTETS)
    assert client.put("/models/mnist/default", json={"version": 2}).status_code == 200
    answer = client.put("/models/mnist/retention", json={"keep_latest": 1})
    assert answer.status_code == 200 and answer.get_json() == {"keep_latest": 1, "deleted": [3]}
    kept = [v["version"] for v in client.get("/models/mnist").get_json()["versions"]]
    assert kept == [1, 2, 4]  # the seed, the default, the newest
    client.post("/models/mnist/versions", data=good_model(), content_type=OCTETS)  # v5 lands: v4 goes
    assert [v["version"] for v in client.get("/models/mnist").get_json()["versions"]] == [1, 2, 5]
    assert client.put("/models/mnist/retention", json={"keep_latest": 0}).status_code == 422
    assert client.put("/models/nothing/retention", json={"keep_latest": 2}).status_code == 404
    assert client.put("/models/mnist/retention", json={"keep_latest": None}).get_json()["deleted"] == []


def test_the_onnx_export_route(client):
    pytest.importorskip("onnx")
    answer = client.get("/models/mnist/versions/1/model.onnx?pixels=float32")
    assert answer.status_code == 200 and answer.data[:2] == b"\x08\x08"  # ir_version 8
    assert client.get("/models/mnist/versions/1/model.onnx?pixels=int4").status_code == 422
    assert client.get("/models/mnist/versions/7/model.onnx").status_code == 404


def test_a_model_of_other_inputs_is_served_only_inputs_of_its_size(client):
    from service.nn import model_file
    from service.nn.network import MLP, ModelSpec

    odd = MLP.initialize(ModelSpec(input_size=100, hidden=(4,)), np.random.default_rng(0))
    assert (
        client.post("/models/odd/versions", data=model_file.to_bytes(odd), content_type=OCTETS).status_code
        == 201
    )
    for path in ("/predict", "/explain"):
        answer = client.post(path, json={"pixels": [0] * 784, "model": "odd"})
        assert answer.status_code == 422, (path, answer.get_json())
        assert "odd v1 takes 100" in answer.get_json()["error"]["message"]
    infer = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 100], "data": [0] * 100}]}
    assert client.post("/v2/models/odd/infer", json=infer).status_code == 200
