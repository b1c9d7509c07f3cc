"""A version number names one set of weights forever, seen through a real ``backprop serve`` with
two gunicorn workers, each with its own cache of loaded versions: a deleted version's number is
never given again, and no worker goes on answering with weights the store no longer holds."""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from benchmarks.serving import requests_per_worker, spread
from tests.system.processes import AUTH

pytestmark = pytest.mark.slow

QUICK = {"model": "m", "hidden": [16], "epochs": 1}


def _train(svc, seed: int) -> int:
    job = svc.train(**QUICK, seed=seed).json()
    return svc.wait_job(job["id"], ("succeeded",))["result"]["version"]


def _answers(svc, digit: list[int], version: int, count: int = 24) -> list[tuple[int, list[float]]]:
    """(status, probabilities) of ``count`` predictions by m ``version``, four at a time so that
    both workers answer some."""

    def ask(_):
        response = requests.post(
            f"{svc.url}/predict", json={"pixels": digit, "model": "m", "version": version}, timeout=30
        )
        body = response.json()
        return response.status_code, body["predictions"][0]["probabilities"] if response.ok else None

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(ask, range(count)))


def _both_workers_answer(svc, check) -> None:
    metrics = Path(svc.env["BACKPROP_STATE_DIR"]) / "prometheus"
    before = requests_per_worker(metrics)
    check()
    after = requests_per_worker(metrics)
    answered = spread(before, after)["requests_per_worker"]
    assert len(answered) >= 2, f"requests per worker {answered}: the check saw one worker's cache"


def test_a_deleted_version_is_never_served_and_its_number_never_given_again(service, real_digits):
    svc = service()
    digit = real_digits[0][0].tolist()
    assert [_train(svc, seed) for seed in (1, 2, 3)] == [1, 2, 3]

    def v3_answers_alike():
        answers = _answers(svc, digit, 3)
        assert {status for status, _ in answers} == {200}
        assert all(probabilities == answers[0][1] for _, probabilities in answers)

    _both_workers_answer(svc, v3_answers_alike)  # both workers now hold v3 in their caches
    old_v3 = _answers(svc, digit, 3, count=1)[0][1]

    # Files changed under the caches (an operator copying v2 over v3): no worker keeps the old v3.
    folder = svc.store / "m"
    for suffix in (".npz", ".json"):  # the sidecar last, as the store writes
        shutil.copyfile(folder / f"v2{suffix}", folder / f"v3{suffix}.tmp")
        os.replace(folder / f"v3{suffix}.tmp", folder / f"v3{suffix}")
    v2 = _answers(svc, digit, 2, count=1)[0][1]
    time.sleep(
        1.5
    )  # BACKPROP_DEFAULT_REFRESH_SECONDS (1): how often a worker looks at a cached version again

    def v3_is_what_the_files_hold():
        answers = _answers(svc, digit, 3)
        assert all(probabilities != old_v3 for _, probabilities in answers)
        assert all(probabilities == v2 or status >= 400 for status, probabilities in answers)

    _both_workers_answer(svc, v3_is_what_the_files_hold)

    assert svc.put_default("m", 1).status_code == 200
    gone = requests.delete(f"{svc.url}/models/m/versions/3", headers=AUTH, timeout=10)
    assert gone.status_code in (200, 204), gone.text
    assert _train(svc, seed=4) == 4  # not 3 again

    def v3_is_gone_everywhere():
        answers = _answers(svc, digit, 3)
        assert {status for status, _ in answers} == {404}, answers[:3]

    _both_workers_answer(svc, v3_is_gone_everywhere)
    listed = requests.get(f"{svc.url}/models/m", timeout=10).json()
    assert [v["version"] for v in listed["versions"]] == [1, 2, 4]

    # deleting the newest and then every other version keeps the mark too
    assert svc.put_default("m", 1).status_code == 200
    for version in (4, 2):
        assert requests.delete(f"{svc.url}/models/m/versions/{version}", headers=AUTH, timeout=10).ok
    assert _train(svc, seed=5) == 5
