"""The Python client and ``backprop predict --url`` against a real server."""

import json
import subprocess
import sys

import numpy as np
import pytest

from service.client import Client, Conflict, InvalidRequest, JobFailed, NotFound, Unauthorized
from tests.conftest import TOKEN

pytestmark = pytest.mark.slow


@pytest.fixture
def server(module_server):
    """One server for the module: its tests run in order, and the training test expects no model
    but the shipped one before it."""
    return module_server


@pytest.fixture
def client(server):
    return Client(server[0], token=TOKEN)


def test_predict_from_a_list_an_array_and_a_batch(client, real_digits):
    images, labels = real_digits
    one = client.predict(images[0].tolist())
    assert (one.model, one.version) == ("mnist", 1) and one.label == labels[0]
    assert client.predict(images[0].reshape(28, 28)).label == labels[0]  # uint8 array: raw bytes
    batch = client.predict(images[:50].astype(np.float32))  # float array: JSON
    assert len(batch.labels) == 50 and np.mean(np.array(batch.labels) == labels[:50]) >= 0.9
    assert client.predict(images[:50]).labels == batch.labels
    unit = client.predict(images[:5] / 255.0, scale="unit")
    assert unit.labels == batch.labels[:5]


def test_errors_are_typed_and_carry_the_server_message(client, server):
    with pytest.raises(InvalidRequest) as info:
        client.predict([300.0] * 784)
    assert info.value.status == 422 and info.value.details[0]["loc"] == ["pixels", 0]
    assert "between 0 and 255" in info.value.message
    with pytest.raises(NotFound, match="no model named 'nope'"):
        client.predict([0] * 784, model="nope")
    with pytest.raises(Conflict):
        client.delete_version("mnist", 1)
    with pytest.raises(Unauthorized):
        Client(server[0]).set_default("mnist", 1)
    with pytest.raises(ValueError, match="784 pixels"):
        client.predict([1, 2, 3])


def test_train_and_wait_with_progress_then_use_the_model(client, real_digits):
    seen = []
    job = client.train(dataset="mnist", model="viaclient", hidden=[32], epochs=3)
    done = client.wait(job["id"], poll=0.1, timeout=120, progress=seen.append)
    assert done["result"]["model"] == "viaclient" and seen[-1]["status"] == "succeeded"
    assert any(s["status"] in ("queued", "running") for s in seen)
    names = [m["name"] for m in client.models()["models"]]
    assert names == ["mnist", "viaclient"]
    images, labels = real_digits
    answer = client.predict(images[:20], model="viaclient")
    assert answer.model == "viaclient" and np.mean(np.array(answer.labels) == labels[:20]) > 0.8


def test_a_cancelled_job_raises_job_failed(client):
    job = client.train(dataset="mnist", model="never", epochs=300, hidden=[128])
    client.cancel(job["id"])
    with pytest.raises(JobFailed, match="cancelled"):
        client.wait(job["id"], poll=0.1, timeout=60)


def test_backprop_predict_png_through_the_server(server, digit_png):
    path, label = digit_png
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "predict", str(path), "--url", server[0], "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(result.stdout)
    assert answer["label"] == label and answer["model"] == "mnist"
