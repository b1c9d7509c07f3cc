"""PUT, GET and DELETE /models/NAME/traffic: unversioned requests follow the policy, versioned ones
bypass it, a shadow never changes an answer, and hostile policies are refused by name."""

from __future__ import annotations

import time

import pytest

from service import create_app
from service.api.state import service_state
from tests.conftest import TOKEN
from tests.model_files import good_model

BLANK = {"pixels": [0] * 784}
OCTETS = "application/octet-stream"


@pytest.fixture
def versions(client):
    """mnist v2 and v3 beside the seed."""
    for _ in range(2):
        assert (
            client.post("/models/mnist/versions", data=good_model(), content_type=OCTETS).status_code == 201
        )
    return client


def _answered(client, body=BLANK, **kwargs) -> int:
    with client.post("/predict", json=body, **kwargs) as answer:  # closed: a shadow runs then
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()["model"]["version"]


def test_unversioned_requests_follow_the_policy_and_versioned_ones_bypass_it(versions):
    client = versions
    assert client.get("/models/mnist/traffic").get_json()["policy"] is None
    answer = client.put("/models/mnist/traffic", json={"split": {"2": 1}})
    assert answer.status_code == 200 and answer.get_json()["policy"]["split"] == {"2": 1}
    assert {_answered(client) for _ in range(10)} == {2}
    assert _answered(client, {**BLANK, "version": 1}) == 1
    infer = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 784], "data": [0] * 784}]}
    assert client.post("/v2/models/mnist/infer", json=infer).get_json()["model_version"] == "2"
    assert client.post("/v2/models/mnist/versions/3/infer", json=infer).get_json()["model_version"] == "3"
    raw = client.post("/predict", data=bytes(784), content_type=OCTETS).get_json()
    assert raw["model"]["version"] == 2
    figures = client.get("/models/mnist/traffic").get_json()["figures"]
    assert figures["2"]["requests"] == 12 and figures["2"]["errors"] == 0
    assert client.delete("/models/mnist/traffic").status_code == 204
    assert _answered(client) == 1


def test_a_sticky_header_keeps_a_caller_on_its_version(versions):
    client = versions
    client.put("/models/mnist/traffic", json={"split": {"2": 1, "3": 1}, "sticky_header": "X-User-ID"})
    for caller in ("ann", "bob", "cy", "dee"):
        assert len({_answered(client, headers={"X-User-ID": caller}) for _ in range(5)}) == 1


def test_a_shadow_changes_no_answer_and_is_counted(versions):
    client = versions
    before = client.post("/predict", json=BLANK).get_json()
    client.put("/models/mnist/traffic", json={"split": {"1": 1}, "shadow": {"version": 2, "fraction": 1}})
    for _ in range(5):
        with client.post("/predict", json=BLANK) as answer:
            assert answer.get_json() == before
    deadline = time.monotonic() + 10  # the shadow runs in a thread of the worker, in batches
    while (view := client.get("/models/mnist/traffic").get_json())["figures"].get("2", {}).get(
        "compared"
    ) != 5:
        assert time.monotonic() < deadline, view
        time.sleep(0.02)
    assert view["figures"]["1"]["requests"] == 5 and view["figures"]["2"]["dropped"] == 0


def test_the_policy_survives_a_restart_and_versions_in_it_stay(versions, app_settings):
    client = versions
    client.put("/models/mnist/traffic", json={"split": {"1": 1, "3": 1}, "shadow": {"version": 2}})
    for version in (2, 3):
        refused = client.delete(f"/models/mnist/versions/{version}")
        assert refused.status_code == 409 and "traffic policy" in refused.get_json()["error"]["message"]
    answer = client.put("/models/mnist/retention", json={"keep_latest": 1})
    assert answer.get_json()["deleted"] == []  # the seed, and both versions the policy names
    restarted = create_app(app_settings).test_client()
    assert restarted.get("/models/mnist/traffic").get_json()["policy"]["split"] == {"1": 1, "3": 1}


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ({"split": {"1": 0, "2": 0}}, "must not all be 0"),
        ({"split": {"1": -5}}, "greater than or equal to 0"),
        ({"split": {"9": 1}}, "has no version 9"),
        ({"split": {"0": 1}}, "should match pattern"),
        ({"split": {"one": 1}}, "should match pattern"),
        ({"split": {str(v): 1 for v in range(1, 10_001)}}, "at most 16 items"),
        ({"split": {}}, "at least 1 item"),
        ({"split": {"1": 1}, "sticky_header": "X-User\r\nSet-Cookie: a"}, "should match pattern"),
        ({"split": {"1": 1}, "sticky_header": ""}, "should match pattern"),
        ({"split": {"1": 1}, "shadow": {"version": 9}}, "has no version 9"),
        ({"split": {"1": 1}, "shadow": {"version": 2, "fraction": 0}}, "greater than 0"),
        ({"split": {"1": True}}, "valid integer"),
        ({"split": {"1": 1}, "colour": "red"}, "colour"),
    ],
)
def test_hostile_policies_are_422(versions, policy, words):
    answer = versions.put("/models/mnist/traffic", json=policy)
    assert answer.status_code == 422, answer.get_json()
    assert words in str(answer.get_json()["error"]), answer.get_json()
    assert versions.get("/models/mnist/traffic").get_json()["policy"] is None


def test_a_damaged_version_cannot_enter_a_policy(versions, app):
    path = service_state(app).store.version_path("mnist", 2, ".npz")
    path.write_bytes(path.read_bytes()[:-100])
    answer = versions.put("/models/mnist/traffic", json={"split": {"1": 9, "2": 1}})
    assert answer.status_code == 422 and "cannot enter the policy" in answer.get_json()["error"]["message"]


def test_a_version_of_other_inputs_or_classes_cannot_enter_a_policy(versions, app):
    import numpy as np

    from service.nn.network import MLP, ModelSpec

    other = MLP.initialize(
        ModelSpec(hidden=(4,), num_classes=3, class_names=("a", "b", "c")), np.random.default_rng(0)
    )
    version = service_state(app).store.save("mnist", other)["version"]
    answer = versions.put("/models/mnist/traffic", json={"split": {"1": 1}, "shadow": {"version": version}})
    assert answer.status_code == 422, answer.get_json()
    assert (
        "takes 784 inputs and 3 classes; the default v1 784 inputs and 10 classes"
        in answer.get_json()["error"]["message"]
    )


def test_changing_the_policy_needs_the_token(make_client):
    guarded = make_client(api_token=TOKEN)
    assert guarded.put("/models/mnist/traffic", json={"split": {"1": 1}}).status_code == 401
    assert guarded.delete("/models/mnist/traffic").status_code == 401
    assert guarded.get("/models/mnist/traffic").status_code == 200
    assert (
        guarded.put(
            "/models/nothing/traffic", json={"split": {"1": 1}}, headers={"Authorization": f"Bearer {TOKEN}"}
        ).status_code
        == 404
    )


def test_a_busy_shadow_keeps_a_sample_and_the_verdict_counts_the_rest_as_dropped(versions, app):
    client = versions
    state = service_state(app)
    state.shadows.budget = 3  # three requests of one image wait at most
    state.shadows.interval = 3600  # and nothing runs them during the test: no tick,
    state.shadows.pace.quiet = float("inf")  # and no pace counts as quiet
    client.put("/models/mnist/traffic", json={"split": {"1": 1}, "shadow": {"version": 2}})
    for _ in range(5):
        _answered(client)
    assert "2" not in client.get("/models/mnist/traffic").get_json()["figures"]  # nothing compared yet
    state.shadows.run_waiting()  # a tick: the sample compared, the rest counted
    figures = client.get("/models/mnist/traffic").get_json()["figures"]["2"]
    assert figures["compared"] == 3 and figures["dropped"] == 2
