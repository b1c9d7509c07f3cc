import json

import numpy as np
import pytest

from service.api.state import service_state
from service.nn import MLP, ModelSpec
from service.settings import Settings
from tests.conftest import TOKEN


def _add_version(app, name="mnist", seed=1):
    net = MLP.initialize(ModelSpec(hidden=(4,)), np.random.default_rng(seed))
    return service_state(app).store.save(name, net)["version"]


def test_list_and_describe(client):
    body = client.get("/models").get_json()
    assert body["default_model"] == "mnist"
    (model,) = body["models"]
    assert model["name"] == "mnist" and model["default_version"] == 1 and model["is_service_default"]
    version = model["versions"][0]
    assert version["is_default"] and len(version["sha256"]) == 64 and "history" not in version
    detail = client.get("/models/mnist/versions/1").get_json()
    assert detail["metrics"]["held_out_accuracy"] >= 0.99 and detail["metrics"]["held_out_samples"] >= 10_000
    members = detail["training"]["members"]
    assert len(detail["history"]) == members * detail["training"]["epochs"]
    assert detail["spec"]["hidden"] == [members * size for size in detail["training"]["hidden"]]
    assert detail["created"] and detail["job"] is None
    assert client.get("/models/mnist").get_json()["versions"][0]["version"] == 1


def test_unknown_model_and_version(client):
    assert client.get("/models/nothing").get_json()["error"]["code"] == "model_not_found"
    assert client.get("/models/mnist/versions/5").status_code == 404
    assert client.get("/models/Bad..Name").status_code == 422


def test_set_default_then_predict_uses_it(client, app):
    version = _add_version(app)
    assert client.post("/predict", json={"pixels": [0] * 784}).get_json()["model"]["version"] == 1
    response = client.put("/models/mnist/default", json={"version": version})
    assert response.status_code == 200 and response.get_json()["default_version"] == version
    assert client.post("/predict", json={"pixels": [0] * 784}).get_json()["model"]["version"] == version


def test_set_default_validates_its_body(client):
    assert client.put("/models/mnist/default", json={"version": 0}).status_code == 422
    assert client.put("/models/mnist/default", json={"version": 9}).status_code == 404


def test_delete_version_and_conflict_for_the_default(client, app):
    version = _add_version(app)
    client.put("/models/mnist/default", json={"version": 1})
    conflict = client.delete("/models/mnist/versions/1")
    assert conflict.status_code == 409 and conflict.get_json()["error"]["code"] == "conflict"
    assert client.delete(f"/models/mnist/versions/{version}").status_code == 204
    assert client.get(f"/models/mnist/versions/{version}").status_code == 404
    gone = client.post("/predict", json={"pixels": [0] * 784, "version": version})
    assert gone.status_code == 404


@pytest.fixture
def secured(make_client):
    return make_client(api_token=TOKEN)


def test_token_guards_model_changing_endpoints(secured):
    for call in (
        lambda h: secured.put("/models/mnist/default", json={"version": 1}, headers=h),
        lambda h: secured.delete("/models/mnist/versions/1", headers=h),
    ):
        missing = call({})
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert missing.get_json()["error"]["code"] == "unauthorized"
        assert call({"Authorization": "Bearer wrong"}).status_code == 401
    ok = secured.put(
        "/models/mnist/default", json={"version": 1}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert ok.status_code == 200
    # Reading and predicting stay open.
    assert secured.get("/models").status_code == 200
    assert secured.post("/predict", json={"pixels": [0] * 784}).status_code == 200


def test_settings_token_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("BACKPROP_API_TOKEN", "from-the-environment")
    assert Settings().api_token.get_secret_value() == "from-the-environment"
    assert "from-the-environment" not in repr(Settings())


def test_the_loaders_notes_like_the_data_folder_only_for_token_holders(make_client):
    client = make_client(api_token=TOKEN)
    store = service_state(client.application).store
    net = MLP.initialize(ModelSpec(hidden=(4,)), np.random.default_rng(0))
    dataset = {"name": "mnist", "source": "/srv/data/mnist", "notes": ["/srv/data/mnist: no test split"]}
    data_dir = str(service_state(client.application).settings.data_dir)
    metrics = {"measured_on": {"test_accuracy": "none: /srv/data/mnist has no test files", "x": data_dir}}
    version = store.save("noted", net, {"dataset": dataset, "metrics": metrics})["version"]
    shown = client.get(f"/models/noted/versions/{version}").json
    assert shown["dataset"] == {"name": "mnist"}
    assert "/srv/data" not in json.dumps(shown) and data_dir not in json.dumps(shown)
    assert shown["metrics"]["measured_on"]["test_accuracy"] == "none: the data folder has no test files"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get(f"/models/noted/versions/{version}", headers=auth).json["dataset"] == dataset
