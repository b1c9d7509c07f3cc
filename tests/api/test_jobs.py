import pytest

from tests.conftest import TOKEN


def test_train_answers_202_with_location(client):
    response = client.post("/train", json={"epochs": 2, "hidden": [16], "model": "tiny"})
    assert response.status_code == 202
    body = response.get_json()
    assert (
        body["status"] == "queued"
        and response.headers["Location"] == f"/jobs/{body['id']}" == body["location"]
    )
    job = client.get(body["location"]).get_json()
    assert job["status"] == "queued" and job["request"]["epochs"] == 2 and job["request"]["model"] == "tiny"
    assert job["request"]["optimizer"] == "adam"  # defaults filled in from TrainingConfig
    assert job["progress"]["percent"] == 0.0 and job["history"] == [] and job["result"] is None
    assert "heartbeat_ts" not in job


@pytest.mark.parametrize(
    "body,loc",
    [
        ({"epochs": 10**9}, "epochs"),
        ({"hidden": [100_000]}, "hidden"),
        ({"hidden": [8] * 20}, "hidden"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"dataset": "cifar10"}, "dataset"),
        ({"model": "../x"}, "model"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_train_validates_hyperparameters(client, body, loc):
    response = client.post("/train", json=body)
    assert response.status_code == 422
    assert response.get_json()["error"]["details"][0]["loc"][0] == loc


def test_jobs_are_paginated_newest_first(client):
    ids = [client.post("/train", json={"epochs": 1}).get_json()["id"] for _ in range(3)]
    page = client.get("/jobs?limit=2&offset=0").get_json()
    assert page["total"] == 3 and page["limit"] == 2 and [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    assert [j["id"] for j in client.get("/jobs?limit=2&offset=2").get_json()["jobs"]] == ids[:1]
    assert client.get("/jobs?limit=1000").status_code == 422


def test_cancel_queued_then_conflict(client):
    job_id = client.post("/train", json={"epochs": 1}).get_json()["id"]
    assert client.post(f"/jobs/{job_id}/cancel").get_json()["status"] == "cancelled"
    again = client.post(f"/jobs/{job_id}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.get_json()["error"]["message"]


def test_unknown_and_malformed_job_ids(client):
    assert client.get("/jobs/" + "0" * 32).get_json()["error"]["code"] == "job_not_found"
    assert client.get("/jobs/not-an-id").status_code == 422


def test_training_endpoints_need_the_token_when_set(make_client):
    client = make_client(api_token=TOKEN)
    assert client.post("/train", json={"epochs": 1}).status_code == 401
    accepted = client.post("/train", json={"epochs": 1}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert accepted.status_code == 202
    job_id = accepted.get_json()["id"]
    assert client.post(f"/jobs/{job_id}/cancel").status_code == 401
    assert client.get(f"/jobs/{job_id}").status_code == 200  # reading stays open


def test_an_unreachable_queue_is_a_503(make_client, free_redis_url):
    client = make_client(redis_url=free_redis_url)
    response = client.post("/train", json={"epochs": 1})
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "queue_unavailable"


def test_a_full_queue_answers_429_with_retry_after(make_client):
    client = make_client(max_queued_jobs=2)
    assert [client.post("/train", json={"epochs": 1}).status_code for _ in range(2)] == [202, 202]
    refused = client.post("/train", json={"epochs": 1})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    error = refused.get_json()["error"]
    assert error["code"] == "too_many_jobs" and "BACKPROP_MAX_QUEUED_JOBS" in error["message"]
    assert client.get("/jobs").get_json()["total"] == 2  # the refused job left no record


def test_a_job_over_the_cost_bound_is_refused_with_the_bound_named(client):
    response = client.post("/train", json={"hidden": [4096] * 8, "epochs": 500})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["details"][0]["type"] == "job_cost" and "BACKPROP_MAX_JOB_COST" in error["message"]
    assert client.post("/train", json={"hidden": [512, 256], "epochs": 30}).status_code == 202


@pytest.mark.parametrize("name", ["a..b", "..", "x..", "A", "-x", "a" * 65])
def test_model_names_the_store_refuses_are_refused_at_the_request(client, name):
    response = client.post("/train", json={"epochs": 1, "model": name})
    assert response.status_code == 422 and response.get_json()["error"]["details"][0]["loc"] == ["model"]


def test_a_dataset_the_server_lacks_is_refused_naming_the_setting(make_client, tmp_path):
    client = make_client(data_dir=tmp_path / "nowhere")
    response = client.post("/train", json={"epochs": 1, "dataset": "mnist"})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["details"][0]["loc"] == ["dataset"] and "BACKPROP_DATA_DIR" in error["message"]
    assert "--" not in error["message"]  # no command-line flags: they do not exist over HTTP
    downloading = make_client(data_dir=tmp_path / "nowhere", allow_download=True)
    assert downloading.post("/train", json={"epochs": 1}).status_code == 202


def test_the_job_schema_lists_events(client):
    job_id = client.post("/train", json={"epochs": 1}).get_json()["id"]
    assert client.get(f"/jobs/{job_id}").get_json()["events"] == []


def test_a_queued_job_says_when_no_training_worker_is_alive(client):
    from service.api.state import service_state

    job_id = client.post("/train", json={"epochs": 1}).get_json()["id"]
    waiting = client.get(f"/jobs/{job_id}").get_json()
    assert waiting["status"] == "queued" and "no training worker is alive" in waiting["note"]
    assert "no training worker" in client.get("/jobs").get_json()["jobs"][0]["note"]
    service_state(client.application).jobs.records.worker_alive("host-a:1", ttl=30)
    assert client.get(f"/jobs/{job_id}").get_json()["note"] is None  # one is: it will be run
    assert service_state(client.application).jobs.get(job_id).note is None  # a view, not stored


def test_a_job_links_its_learning_curves(client, app, digits_dir):
    import xml.etree.ElementTree as ET

    from service.api.state import service_state
    from service.jobs.runner import run_job

    job_id = client.post("/train", json={"epochs": 3, "hidden": [16], "model": "tiny"}).get_json()["id"]
    job = client.get(f"/jobs/{job_id}").get_json()
    assert job["curves"] == f"/jobs/{job_id}/curves.svg"
    assert all(j["curves"] == f"/jobs/{j['id']}/curves.svg" for j in client.get("/jobs").get_json()["jobs"])
    waiting = client.get(job["curves"])
    assert waiting.status_code == 200 and waiting.mimetype == "image/svg+xml"
    assert b"no epoch has finished yet" in waiting.data
    state = service_state(app)
    run_job(state.settings, state.jobs.records, job_id)
    drawn = ET.fromstring(client.get(job["curves"]).data)
    assert len(drawn.findall("{http://www.w3.org/2000/svg}polyline")) == 3
    assert drawn.get("aria-label").endswith("3 of 3 epochs, succeeded")
    assert client.get("/jobs/" + "0" * 32 + "/curves.svg").status_code == 404
