"""Traffic policies through a real ``backprop serve`` (nginx, two gunicorn workers): a 90/10 split
and sticky callers within binomial bounds, a shadow that changes no answer and whose agreement
equals the offline comparison of the two versions, and two API replicas sharing one store that
apply a changed policy within the refresh interval."""

from __future__ import annotations

import time

import numpy as np
import pytest
import requests

from benchmarks.traffic_shadow import noisy_copy
from service.nn import model_file
from service.store import ModelStore
from tests.system.processes import AUTH
from tests.traffic import binomial_p_value

pytestmark = pytest.mark.slow
REFRESH = 0.2


def _candidate(store_dir) -> bytes:
    """The shipped model with a little noise on its weights, as a model file to upload."""
    return model_file.to_bytes(noisy_copy(store_dir))


def _answers(session, url: str, images: np.ndarray, pause: float = 0.0) -> list[bytes]:
    """The /predict response bodies of ``images``, one request each, as raw bytes, ``pause``
    seconds apart."""
    headers = {"Content-Type": "application/octet-stream"}
    answers = []
    for row in images:
        answers.append(
            session.post(f"{url}/predict", data=row.tobytes(), headers=headers, timeout=10).content
        )
        time.sleep(pause)
    return answers


def _put(svc, policy: dict) -> dict:
    answer = requests.put(f"{svc.url}/models/mnist/traffic", json=policy, headers=AUTH, timeout=30)
    assert answer.status_code == 200, answer.text
    time.sleep(REFRESH * 3)  # every worker reads it again
    return answer.json()["policy"]


def test_split_sticky_and_shadow_through_a_real_serve(service, store_dir, real_digits):
    svc = service(worker=False, default_refresh_seconds=REFRESH)
    headers = {**AUTH, "Content-Type": "application/octet-stream"}
    assert requests.post(
        f"{svc.url}/models/mnist/versions", data=_candidate(store_dir), headers=headers, timeout=30
    ).ok
    session = requests.Session()
    blank = {"pixels": [0] * 784}

    _put(svc, {"split": {"1": 90, "2": 10}})
    versions = [
        session.post(f"{svc.url}/predict", json=blank, timeout=10).json()["model"]["version"]
        for _ in range(2000)
    ]
    assert set(versions) == {1, 2} and binomial_p_value(versions.count(2), 2000, 0.1) > 0.001

    _put(svc, {"split": {"1": 90, "2": 10}, "sticky_header": "X-User-ID"})
    callers = []
    for caller in range(200):
        seen = {
            session.post(
                f"{svc.url}/predict", json=blank, headers={"X-User-ID": f"u{caller}"}, timeout=10
            ).json()["model"]["version"]
            for _ in range(3)
        }
        assert len(seen) == 1, (caller, seen)
        callers.append(seen.pop())
    assert binomial_p_value(callers.count(2), 200, 0.1) > 0.001

    images = real_digits[0]
    assert requests.delete(f"{svc.url}/models/mnist/traffic", headers=AUTH, timeout=30).status_code == 204
    time.sleep(REFRESH * 3)
    plain = _answers(session, svc.url, images)
    policy = _put(svc, {"split": {"1": 1}, "shadow": {"version": 2, "fraction": 1.0}, "min_agreement": 0})
    # A service whose requests mostly come closer than 1.5 ms compares only a sample
    # (service.traffic.shadow): paced, every image is compared, and the figures can be checked.
    shadowed = _answers(session, svc.url, images, pause=0.004)
    assert shadowed == plain  # byte for byte: the shadow changes no answer
    deadline = time.monotonic() + 20
    while True:
        view = session.get(f"{svc.url}/models/mnist/traffic", headers=AUTH, timeout=10).json()
        if view["figures"].get("2", {}).get("compared") == len(images) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert view["policy"]["revision"] == policy["revision"]
    store = ModelStore(store_dir)
    ours = store.load("mnist", 1)[0]
    theirs = store.load("mnist", 2)[0]
    p1 = ours.predict_proba(ours.normalize(images))
    p2 = theirs.predict_proba(theirs.normalize(images))
    figures = view["figures"]["2"]
    assert figures["compared"] == len(images)
    assert figures["agreement"] == pytest.approx((p1.argmax(1) == p2.argmax(1)).mean(), abs=1e-6)
    assert figures["mean_absolute_difference"] == pytest.approx(np.abs(p1 - p2).mean(), abs=1e-6)
    assert view["figures"]["1"]["requests"] == len(images)
    assert 1 <= len(view["examples"]) <= 8
    metrics = session.get(f"{svc.url}/metrics", timeout=10).text
    assert (
        f'backprop_traffic_compared_total{{model="mnist",policy="{policy["revision"]}",version="2"}} 500.0'
        in metrics
    )
    assert "Traceback" not in svc.log()


def test_two_replicas_sharing_a_store_apply_a_changed_policy_within_the_refresh_interval(
    service, store_dir, tmp_path
):
    refresh = 1.0
    first = service(worker=False, default_refresh_seconds=refresh, state_dir=tmp_path / "var-first")
    second = service(worker=False, default_refresh_seconds=refresh, state_dir=tmp_path / "var-second")
    headers = {**AUTH, "Content-Type": "application/octet-stream"}
    assert requests.post(
        f"{first.url}/models/mnist/versions", data=_candidate(store_dir), headers=headers, timeout=30
    ).ok
    blank = {"pixels": [0] * 784}

    def seen_within(svc, version: int) -> float:
        started = time.monotonic()
        while time.monotonic() - started < 10:
            answers = {
                requests.post(f"{svc.url}/predict", json=blank, timeout=10).json()["model"]["version"]
                for _ in range(4)
            }
            if answers == {version}:
                return time.monotonic() - started
            time.sleep(0.05)
        pytest.fail(f"{svc.url} still answers with {answers}")

    assert requests.put(
        f"{first.url}/models/mnist/traffic", json={"split": {"2": 1}}, headers=AUTH, timeout=30
    ).ok
    assert seen_within(second, 2) < refresh + 1.0
    assert requests.delete(f"{second.url}/models/mnist/traffic", headers=AUTH, timeout=30).status_code == 204
    assert seen_within(first, 1) < refresh + 1.0
