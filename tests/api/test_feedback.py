"""POST /feedback from anyone, and the stored examples for token holders: corrections by pixels and
by the request id of a kept input, the rate and the bound, the switch, hostile bodies, and inputs
kept only when BACKPROP_CAPTURE_FRACTION says so."""

import pytest

from tests.conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
BLANK = [0] * 784


@pytest.fixture
def feedback_client(make_client, tmp_path):
    def build(**settings):
        return make_client(data_dir=tmp_path / "data", api_token=TOKEN, **settings)

    return build


def test_anyone_corrects_and_token_holders_see_relabel_and_delete(feedback_client):
    client = feedback_client()
    made = client.post(
        "/feedback", json={"pixels": [255] * 784, "label": 7, "predicted": 1, "model": "mnist"}
    )
    assert made.status_code == 201 and made.headers["Location"] == f"/feedback/{made.get_json()['id']}"
    example = made.get_json()
    assert (example["label"], example["predicted"], example["model"]) == (7, 1, "mnist")
    location = made.headers["Location"]
    for method, path in (("get", "/feedback"), ("get", location), ("delete", location)):
        assert getattr(client, method)(path).status_code == 401, path
    assert client.patch(location, json={"label": 1}).status_code == 401
    listed = client.get("/feedback", headers=AUTH).get_json()
    assert listed["total"] == 1 and listed["examples"][0]["id"] == example["id"]
    assert listed["summary"]["per_label"][7] == 1 and listed["summary"]["confusions"][1][7] == 1
    assert client.get(location, headers=AUTH).get_json()["pixels"] == [255] * 784
    assert client.patch(location, json={"label": 4}, headers=AUTH).get_json()["label"] == 4
    assert client.delete(location, headers=AUTH).status_code == 204
    assert client.get(location, headers=AUTH).status_code == 404
    assert client.delete(location, headers=AUTH).status_code == 404


def test_a_kept_input_is_corrected_by_the_request_id_its_answer_carried(feedback_client):
    client = feedback_client(capture_fraction=1.0)
    for body, headers in (
        ({"json": {"instances": [BLANK, [255] * 784]}}, {}),  # the fast lane
        ({"data": bytes(784), "content_type": "application/octet-stream"}, {}),
        (
            {"json": {"pixels": BLANK}, "query_string": {"model": "mnist"}},
            {"X-Request-ID": "mine-1"},
        ),  # Flask
    ):
        answer = client.post("/predict", headers=headers, **body)
        answer.close()  # kept once the answer is sent
        request_id = answer.headers["X-Request-ID"]
        assert request_id == headers.get("X-Request-ID", request_id)
        corrected = client.post("/feedback", json={"request_id": request_id, "label": 3})
        assert corrected.status_code == 201, corrected.get_json()
        kept = corrected.get_json()
        assert kept["request_id"] == request_id and kept["position"] == 0 and kept["label"] == 3
        assert kept["model"] == "mnist" and len(kept["probabilities"]) == 10
    pixels = {"name": "pixels", "shape": [1, 784], "datatype": "UINT8", "data": BLANK}
    inferred = client.post(
        "/v2/models/mnist/infer", json={"inputs": [pixels]}, headers={"X-Request-ID": "oip-1"}
    )
    inferred.close()  # the protocol's inputs are kept as /predict's are
    assert client.post("/feedback", json={"request_id": "oip-1", "label": 0}).status_code == 201
    second = client.post("/feedback", json={"request_id": answer.headers["X-Request-ID"], "label": 3})
    assert second.status_code == 409
    summary = client.get("/feedback", headers=AUTH).get_json()["summary"]
    assert summary["corrections"] == 4 and summary["kept_inputs"] == 1  # the batch's second image


def test_nothing_is_kept_when_the_fraction_is_zero(feedback_client, tmp_path):
    client = feedback_client()
    for _ in range(20):
        client.post("/predict", json={"pixels": BLANK}).close()
    assert client.get("/feedback", headers=AUTH).get_json()["total"] == 0
    assert client.get("/feedback/1", headers=AUTH).status_code == 404
    assert client.delete("/feedback/1", headers=AUTH).status_code == 404
    assert client.post("/feedback", json={"request_id": "r", "label": 1}).status_code == 404
    assert not (tmp_path / "data" / ".feedback").exists()  # reading makes no file either


def test_the_rate_the_bound_and_the_switch(feedback_client):
    client = feedback_client(feedback_per_minute=3, feedback_max_examples=10)
    for _ in range(3):
        assert client.post("/feedback", json={"pixels": BLANK, "label": 0}).status_code == 201
    limited = client.post("/feedback", json={"pixels": BLANK, "label": 0})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.get_json()["error"]["code"] == "rate_limited"
    others = [f"10.1.0.{i}" for i in range(4)]
    for address in others:  # other clients have their own rate, until the store is full
        made = client.post(
            "/feedback", json={"pixels": BLANK, "label": 1}, environ_base={"REMOTE_ADDR": address}
        )
        assert made.status_code == 201
    for address in ("10.2.0.1", "10.2.0.2", "10.2.0.3"):
        made = client.post(
            "/feedback", json={"pixels": BLANK, "label": 2}, environ_base={"REMOTE_ADDR": address}
        )
    full = client.post(
        "/feedback", json={"pixels": BLANK, "label": 0}, environ_base={"REMOTE_ADDR": "10.3.0.1"}
    )
    assert full.status_code == 507 and "BACKPROP_FEEDBACK_MAX_EXAMPLES" in full.get_json()["error"]["message"]
    assert client.get("/feedback", headers=AUTH).get_json()["summary"]["corrections"] == 10  # none lost
    off = feedback_client(feedback=False).post("/feedback", json={"pixels": BLANK, "label": 0})
    assert off.status_code == 403 and "BACKPROP_FEEDBACK" in off.get_json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"pixels": BLANK}, "label"),
        ({"pixels": BLANK, "label": 10}, "label"),
        ({"pixels": BLANK, "label": -1}, "label"),
        ({"pixels": BLANK, "label": "7"}, "label"),
        ({"pixels": BLANK, "label": True}, "label"),
        ({"pixels": [0] * 783, "label": 1}, "pixels"),
        ({"pixels": [256] + [0] * 783, "label": 1}, "pixels"),
        ({"pixels": [[0] * 784], "label": 1}, "pixels"),
        ({"pixels": [False] * 784, "label": 1}, "pixels[0]: must be a number, got false"),
        ({"pixels": [0] * 783 + [True], "label": 1}, "pixels[783]: must be a number, got true"),
        ({"pixels": BLANK, "request_id": "r", "label": 1}, "exactly one"),
        ({"label": 1}, "exactly one"),
        ({"request_id": "a\nb", "label": 1}, "request_id"),
        ({"request_id": "r", "position": 16, "label": 1}, "position"),
        ({"pixels": BLANK, "label": 1, "model": "../x"}, "model"),
        ({"pixels": BLANK, "label": 1, "extra": 1}, "extra"),
    ],
)
def test_hostile_corrections_are_422_naming_the_field(feedback_client, body, named):
    client = feedback_client()
    refused = client.post("/feedback", json=body)
    assert refused.status_code == 422 and named in refused.get_data(as_text=True), refused.get_json()
    assert client.get("/feedback", headers=AUTH).get_json()["total"] == 0


def test_token_holders_routes_refuse_bad_ids_and_labels(feedback_client):
    client = feedback_client()
    client.post("/feedback", json={"pixels": BLANK, "label": 5})
    assert client.patch("/feedback/1", json={"label": 12}, headers=AUTH).status_code == 422
    assert client.patch("/feedback/1", json={}, headers=AUTH).status_code == 422
    assert client.get("/feedback/0", headers=AUTH).status_code == 422
    assert client.get("/feedback?limit=0", headers=AUTH).status_code == 422
    assert client.get("/feedback?corrected=true", headers=AUTH).get_json()["total"] == 1
    assert client.get("/feedback?corrected=false", headers=AUTH).get_json()["total"] == 0


def test_a_job_on_corrections_needs_some_and_fine_tuning_needs_a_version(make_client):
    client = make_client(api_token=TOKEN)  # the tiny MNIST-like data folder: the store goes beside it
    none_yet = client.post("/train", json={"dataset": "mnist+feedback", "epochs": 1}, headers=AUTH)
    assert none_yet.status_code == 409 and "no corrections" in none_yet.get_json()["error"]["message"]
    assert client.post("/feedback", json={"pixels": BLANK, "label": 3}).status_code == 201
    body = {"dataset": "mnist+feedback", "epochs": 1, "fine_tune": True, "feedback_weight": 5}
    accepted = client.post("/train", json=body, headers=AUTH)
    assert accepted.status_code == 202, accepted.get_json()
    assert client.get(accepted.headers["Location"]).get_json()["request"]["dataset"] == "mnist+feedback"
    fresh = client.post("/train", json={"model": "new", "fine_tune": True, "epochs": 1}, headers=AUTH)
    assert fresh.status_code == 409 and "no default version" in fresh.get_json()["error"]["message"]
    for bad in (
        {"dataset": "mnist+other"},
        {"feedback_weight": 0},
        {"feedback_weight": 101},
        {"fine_tune": "yes"},
    ):
        assert client.post("/train", json={**bad, "epochs": 1}, headers=AUTH).status_code == 422, bad
