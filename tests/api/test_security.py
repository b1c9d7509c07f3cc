import pytest

from service.api.state import service_state
from service.errors import UnsafeConfiguration
from service.settings import Settings, check_bind, is_loopback
from tests.conftest import TOKEN
from tests.jobs import setting


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.com"])
def test_non_loopback_hosts(host):
    assert not is_loopback(host)


def test_open_endpoints_on_a_public_bind_are_refused():
    with pytest.raises(UnsafeConfiguration, match="BACKPROP_API_TOKEN"):
        check_bind(Settings(host="0.0.0.0"))


def test_a_token_or_an_explicit_opt_out_allows_it():
    check_bind(Settings(host="0.0.0.0", api_token=TOKEN))
    check_bind(Settings(host="0.0.0.0", allow_insecure=True))
    check_bind(Settings())  # loopback by default


def test_paths_and_worker_names_only_for_token_holders(make_client, tmp_path):
    from service.jobs.queue import JobQueue
    from service.store import ModelStore

    client = make_client(api_token=TOKEN)
    app = client.application
    job_id = client.post("/train", json={"epochs": 1}, headers={"Authorization": f"Bearer {TOKEN}"}).json[
        "id"
    ]
    queue: JobQueue = service_state(app).jobs
    lost = {"worker": "host-a:4242", "at": "now", "reason": "its worker stopped reporting in"}
    data_dir = str(service_state(app).settings.data_dir)
    measured_on = {"test_accuracy": f"none: {data_dir}/mnist has no test files"}
    result = {"model": "mnist", "version": 2, "default": False, "metrics": {"measured_on": measured_on}}
    queue.records.update(job_id, setting(worker="host-b:99", lost_attempts=[lost], result=result))
    store: ModelStore = service_state(app).store
    meta = store.metadata("mnist", 1)
    assert str(meta["dataset"]["source"]).startswith("/") or meta["dataset"]["source"]

    anonymous = client.get(f"/jobs/{job_id}").json
    assert anonymous["worker"] is None and anonymous["lost_attempts"] == [
        {"at": "now", "reason": lost["reason"]}
    ]
    assert "source" not in client.get("/models/mnist/versions/1").json["dataset"]
    assert all("source" not in v["dataset"] for v in client.get("/models").json["models"][0]["versions"])
    assert "host-" not in client.get("/jobs").get_data(as_text=True)
    assert data_dir not in client.get("/jobs").get_data(as_text=True)
    assert data_dir not in client.get(f"/jobs/{job_id}").get_data(as_text=True)

    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get(f"/jobs/{job_id}", headers=auth).json["worker"] == "host-b:99"
    assert data_dir in client.get(f"/jobs/{job_id}", headers=auth).get_data(as_text=True)
    assert (
        client.get("/models/mnist/versions/1", headers=auth).json["dataset"]["source"]
        == meta["dataset"]["source"]
    )


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("put", "/models/mnist/traffic", {"split": {"": []}}),
        ("put", "/models/mnist/default", {"version": "x"}),
        ("put", "/models/mnist/retention", {"keep_latest": -1}),
        ("post", "/train", {"epochs": "many"}),
    ],
)
def test_without_the_token_an_invalid_body_is_401_not_422(make_client, method, path, body):
    """The body is validated before the view runs: a caller without the token learns nothing of it."""
    answer = getattr(make_client(api_token=TOKEN), method)(path, json=body)
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer")
