"""A model moves between two running services: trained by ``backprop train`` on one store,
downloaded from the service on it (``backprop export --npz --url``), uploaded to another service
with ``backprop push`` and with tritonclient's ``load_model(files=...)``, it answers the same labels
on the 500 repository digits through ``/predict`` and ``/v2``, and its sidecar says where it came
from. And an upload to a store whose disk is full is a 507 that leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import requests

from service.api.transfer import QUERY_TEXT_MAX_LENGTH
from service.client import Client
from service.names import NAME_MAX_LENGTH
from service.repository import TEXT_MAX_LENGTH
from tests.conftest import TOKEN, copy_shipped_store
from tests.model_files import WIDE, good_model, hostile_corpus
from tests.system.processes import AUTH, fill, partial_files, small_disk

pytestmark = pytest.mark.slow


def _backprop(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROP_")}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _predicted(url: str, model: str, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels through /predict, labels through /v2) of ``model``'s default version."""
    rest = requests.post(
        f"{url}/predict",
        params={"model": model},
        data=pixels.tobytes(),
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert rest.status_code == 200, rest.text
    body = {
        "inputs": [
            {
                "name": "pixels",
                "datatype": "UINT8",
                "shape": list(pixels.shape),
                "data": pixels.ravel().tolist(),
            }
        ]
    }
    v2 = requests.post(f"{url}/v2/models/{model}/infer", json=body, timeout=30)
    assert v2.status_code == 200, v2.text
    labels = {o["name"]: o["data"] for o in v2.json()["outputs"]}["label"]
    return np.array([p["label"] for p in rest.json()["predictions"]]), np.array(labels)


def test_a_model_trained_on_one_store_serves_the_same_from_another(
    service, tmp_path, mnist5k_dir, real_digits
):
    pytest.importorskip("tritonclient.http")
    import tritonclient.http as triton

    source = copy_shipped_store(tmp_path / "source-store")
    trained = _backprop(
        "train",
        "--model",
        "trained",
        "--hidden",
        "32",
        "--epochs",
        "1",
        "--model-store",
        str(source),
        "--data-dir",
        str(mnist5k_dir),
    )
    assert trained.returncode == 0, trained.stderr
    first = service(model_store=source, state_dir=tmp_path / "var-source", worker=False)
    second = service(
        model_store=copy_shipped_store(tmp_path / "target-store"),
        state_dir=tmp_path / "var-target",
        worker=False,
    )

    downloaded = tmp_path / "trained.npz"
    export = _backprop(
        "export", "trained", "--npz", str(downloaded), "--url", first.url, env={"BACKPROP_API_TOKEN": TOKEN}
    )
    assert export.returncode == 0 and "wrote trained v1" in export.stdout, export.stderr
    push = _backprop(
        "push",
        str(downloaded),
        "--model",
        "pushed",
        "--url",
        second.url,
        "--training-source",
        first.url,
        env={"BACKPROP_API_TOKEN": TOKEN},
    )
    assert push.returncode == 0 and "pushed" in push.stdout and "pushed v1" in push.stdout, push.stderr
    v2 = triton.InferenceServerClient(second.url.removeprefix("http://"), network_timeout=60.0)
    try:
        v2.load_model(
            "loaded",
            headers=AUTH,
            config=json.dumps({"description": "by tritonclient"}),
            files={"file:1/model.npz": downloaded.read_bytes()},
        )
    finally:
        v2.close()

    pixels = real_digits[0]
    original_rest, original_v2 = _predicted(first.url, "trained", pixels)
    np.testing.assert_array_equal(original_rest, original_v2)
    for moved in ("pushed", "loaded"):
        rest, protocol = _predicted(second.url, moved, pixels)
        np.testing.assert_array_equal(rest, original_rest)
        np.testing.assert_array_equal(protocol, original_rest)
        sidecar = second.get(f"/models/{moved}/versions/1").json()
        assert sidecar["source"] == "upload"
        assert sidecar["sha256"] == first.get("/models/trained/versions/1").json()["sha256"]
    assert second.get("/models/pushed/versions/1").json()["training_source"] == first.url
    assert second.get("/models/loaded/versions/1").json()["description"] == "by tritonclient"
    assert first.get("/models/trained/versions/1").json()["source"] == "training"
    assert "Traceback" not in first.log() + second.log()


def test_an_upload_to_a_full_store_is_507_and_leaves_nothing(service, tmp_path, robustness):
    with small_disk(tmp_path / "small-store", 7 * 1024) as store:
        copy_shipped_store(store)
        svc = service(model_store=store, worker=False)
        fill(store, leave_kib=100)  # room for a pointer file, not for a model
        robustness.fault("model store disk full during an upload")
        headers = {**AUTH, "Content-Type": "application/octet-stream"}
        answer = requests.post(
            f"{svc.url}/models/mnist/versions", data=good_model(hidden=(256,)), headers=headers, timeout=30
        )
        assert answer.status_code == 507, answer.text
        assert answer.json()["error"]["code"] == "insufficient_storage"
        assert not partial_files(store) and sorted(p.name for p in (store / "mnist").glob("v*")) == [
            "v1.json",
            "v1.npz",
        ]
        assert svc.predict_ok([0] * 784) and svc.get("/readyz").status_code == 200
        for filler in store.glob("filler*"):
            filler.unlink()
        again = requests.post(
            f"{svc.url}/models/mnist/versions", data=good_model(hidden=(256,)), headers=headers, timeout=30
        )
        assert again.status_code == 201 and again.json()["version"] == 2
        svc.stop()


def test_the_hostile_corpus_through_nginx_leaves_the_service_whole(service, store_dir):
    svc = service(worker=False)
    headers = {**AUTH, "Content-Type": "application/octet-stream"}
    before = sorted(p.relative_to(store_dir) for p in store_dir.rglob("*"))
    for case, (data, words) in hostile_corpus().items():
        answer = requests.post(f"{svc.url}/models/mnist/versions", data=data, headers=headers, timeout=30)
        assert answer.status_code == 422 and words in answer.json()["error"]["message"], (case, answer.text)
    for refused, status in (
        (
            requests.post(f"{svc.url}/models/a..b/versions", data=good_model(), headers=headers, timeout=30),
            422,
        ),
        (requests.post(f"{svc.url}/models/x/versions", data=good_model(), timeout=30), 401),
        (
            requests.post(
                f"{svc.url}/models/x/versions",
                data=good_model(),
                headers={"Authorization": "Bearer no"},
                timeout=30,
            ),
            401,
        ),
    ):
        assert refused.status_code == status, refused.text
    assert sorted(p.relative_to(store_dir) for p in store_dir.rglob("*")) == before
    assert svc.predict_ok([0] * 784) and svc.get("/healthz").status_code == 200
    assert svc.get("/readyz").status_code == 200 and "Traceback" not in svc.log()


def test_the_longest_valid_options_pass_the_front_in_the_query_and_in_metadata(service):
    svc = service(worker=False)
    name = "a" * NAME_MAX_LENGTH
    longest_query = {
        "description": WIDE * QUERY_TEXT_MAX_LENGTH,
        "training_source": WIDE * QUERY_TEXT_MAX_LENGTH,
    }
    headers = {**AUTH, "Content-Type": "application/octet-stream"}
    answer = requests.post(
        f"{svc.url}/models/{name}/versions",
        params={**longest_query, "make_default": "false"},
        data=good_model(),
        headers=headers,
        timeout=30,
    )
    assert answer.status_code == 201 and answer.json()["training_source"] == longest_query["training_source"]
    over = requests.post(
        f"{svc.url}/models/{name}/versions",
        params={"description": WIDE * TEXT_MAX_LENGTH, "training_source": WIDE * TEXT_MAX_LENGTH},
        data=good_model(),
        headers=headers,
        timeout=30,
    )
    # Invalid, and refused for its size by the front before anything reads it.
    assert over.status_code == 414 and over.json()["error"]["code"], over.text
    client = Client(svc.url, token=TOKEN)
    meta = client.upload(good_model(), name, description=WIDE * TEXT_MAX_LENGTH, training_source=WIDE * 7)
    assert meta["version"] == 2 and meta["description"] == WIDE * TEXT_MAX_LENGTH
    assert svc.get("/readyz").status_code == 200 and "Traceback" not in svc.log()
