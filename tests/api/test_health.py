import json
import re
import shutil

import pytest


def test_healthz_says_whether_the_token_is_required(client, make_client):
    from tests.conftest import TOKEN

    off = {"status": "ok", "token_required": False, "drift_counted": False, "feedback_accepted": True}
    assert client.get("/healthz").get_json() == off
    assert make_client(api_token=TOKEN, drift=True, feedback=False).get("/healthz").get_json() == {
        "status": "ok",
        "token_required": True,
        "drift_counted": True,
        "feedback_accepted": False,
    }


def test_readyz_with_the_default_model(client):
    ready = client.get("/readyz").get_json()
    assert ready == {"status": "ready", "model": {"name": "mnist", "version": 1}, "training_workers": 0}


def test_readyz_counts_the_training_workers_alive(client):
    from service.api.state import service_state

    records = service_state(client.application).jobs.records
    records.worker_alive("host-a:1", ttl=30)
    records.worker_alive("host-b:2", ttl=30)
    assert client.get("/readyz").get_json()["training_workers"] == 2
    records.worker_gone("host-a:1")
    assert client.get("/readyz").get_json()["training_workers"] == 1


def test_readyz_is_503_without_a_model(client, store_dir):
    shutil.rmtree(store_dir)
    response = client.get("/readyz")
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "not_ready"


def test_readyz_is_503_when_the_model_file_is_corrupt(client, store_dir):
    path = store_dir / "mnist" / "v1.npz"
    path.write_bytes(path.read_bytes()[:-10])
    response = client.get("/readyz")
    assert response.status_code == 503 and "sha256" in response.get_json()["error"]["message"]


def test_metrics_count_requests_and_images(client):
    client.post("/predict", json={"instances": [[0] * 784] * 3})
    client.get("/nope")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'backprop_http_requests_total{endpoint="/predict",method="POST",status="200"} 1.0' in text
    assert 'backprop_http_requests_total{endpoint="unmatched",method="GET",status="404"} 1.0' in text
    assert 'backprop_predicted_images_total{model="mnist",version="1"} 3.0' in text
    assert "backprop_http_request_duration_seconds_bucket" in text


def test_openapi_document_comes_from_the_models(client):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    predict = doc["paths"]["/predict"]["post"]
    schema = predict["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["pixels"]["minItems"] == 784
    assert schema["properties"]["pixels"]["items"]["maximum"] == 255
    assert "application/octet-stream" in predict["requestBody"]["content"]
    assert doc["paths"]["/models/{name}/default"]["put"]["security"] == [{"bearer": []}]


def test_every_reference_in_the_openapi_document_leads_somewhere(client):
    doc = client.get("/openapi.json").get_json()
    text = json.dumps(doc)
    references = set(re.findall(r'"\$ref": "([^"]+)"', text))
    assert references, "the document uses components"
    for reference in references:
        node = doc
        assert reference.startswith("#/"), reference
        for part in reference[2:].split("/"):
            assert part in node, f"{reference} leads nowhere"
            node = node[part]
    assert "ErrorBody" in doc["components"]["schemas"]


@pytest.mark.parametrize("path", ["/docs/", "/docs/swagger"])
def test_docs_page(client, path):
    response = client.get(path)
    assert response.status_code == 200 and b"<html" in response.data.lower()
