"""GET /models/NAME/versions/N/drift: the answers a version gave in a recent window against its
reference, counted by /predict and the protocol's infer alike when BACKPROP_DRIFT is on."""

import time

import numpy as np
import pytest

from service import drift
from service.store import ModelStore


@pytest.fixture
def referenced(app_settings, real_digits):
    """mnist v2: the seed's network saved again with a reference from the 500 repository digits."""
    store = ModelStore(app_settings.model_store)
    network, _ = store.load("mnist", 1)
    probabilities = network.predict_proba(network.normalize(real_digits[0]))
    store.save("mnist", network, {"drift_reference": drift.reference(probabilities)})
    return real_digits[0]


def _send(client, digits: np.ndarray) -> None:
    for start in range(0, len(digits), 100):
        batch = digits[start : start + 100]
        answer = client.post("/predict?version=2", json={"instances": batch.tolist()})
        assert answer.status_code == 200


def test_the_digits_of_the_reference_are_ok_and_inverted_ones_drift(make_client, referenced):
    client = make_client(drift=True)
    assert client.get("/models/mnist/versions/2/drift").get_json()["status"] == "watch"  # none yet
    started = time.time() // 60  # the minute the window counts by
    _send(client, referenced[:300])
    pixels = {"name": "pixels", "shape": [200, 784], "datatype": "UINT8", "data": referenced[300:].tolist()}
    assert client.post("/v2/models/mnist/versions/2/infer", json={"inputs": [pixels]}).status_code == 200
    report = client.get("/models/mnist/versions/2/drift").get_json()
    assert report["predictions"] == 500 and report["status"] == "ok" and report["window_seconds"] == 3600
    minute = client.get("/models/mnist/versions/2/drift?window_seconds=60").get_json()
    assert minute["window_seconds"] == 60
    if time.time() // 60 == started:
        assert minute["predictions"] == 500
    else:  # a minute began while the answers were given: the window holds those since, fewer
        assert 0 <= minute["predictions"] < 500
    assert report["labels_psi"] < 1e-3 and report["ood_share"] <= 0.02

    inverted = make_client(drift=True)  # a new app: a new window
    _send(inverted, 255 - referenced)
    report = inverted.get("/models/mnist/versions/2/drift").get_json()
    assert report["status"] == "drifting" and report["predictions"] == 500, report
    assert report["labels_psi"] >= drift.PSI_DRIFTING or report["ood_share"] >= 0.05
    assert all(isinstance(reason, str) and reason for reason in report["reasons"])


def test_what_cannot_be_judged_says_why(make_client, referenced, app_settings):
    off = make_client()
    assert "BACKPROP_DRIFT=1" in off.get("/models/mnist/versions/2/drift").get_json()["error"]["message"]
    store = ModelStore(app_settings.model_store)
    store.save("mnist", store.load("mnist", 1)[0], {})  # v3: a model file from before references
    client = make_client(drift=True)
    unreferenced = client.get("/models/mnist/versions/3/drift")
    assert (
        unreferenced.status_code == 409
        and "no drift reference" in unreferenced.get_json()["error"]["message"]
    )
    assert client.get("/models/mnist/versions/1/drift").status_code == 200  # the seed has its own
    assert client.get("/models/mnist/versions/9/drift").status_code == 404
    assert client.get("/models/nothing/versions/1/drift").status_code == 404
    assert client.get("/models/mnist/versions/0/drift").status_code == 422
    for window in ("59", "86401", "an hour", "-1"):
        refused = client.get(f"/models/mnist/versions/2/drift?window_seconds={window}")
        assert refused.status_code == 422 and "window_seconds" in refused.get_data(as_text=True), window


def test_off_counts_nothing(make_client, referenced):
    client = make_client()
    _send(client, referenced[:100])
    text = client.get("/metrics").get_data(as_text=True)
    assert "backprop_predicted_images_total{" in text and "backprop_drift_answers_total{" not in text
