"""Corrections through a real ``backprop serve`` (nginx, two gunicorn workers): the rate per client
address holds across the workers, an input kept from a /predict is corrected by the request id
nginx gave it, and a full data disk refuses with 507 and loses no stored example."""

import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

from service.feedback.store import FeedbackStore
from tests.system.processes import AUTH, Service, fill, small_disk

BLANK = [0] * 784


def _correct(url: str, label: int) -> int:
    return requests.post(f"{url}/feedback", json={"pixels": BLANK, "label": label}, timeout=30).status_code


def test_the_rate_holds_across_workers_and_kept_inputs_are_named_by_nginx_request_ids(tmp_path, store_dir):
    service = Service(
        tmp_path, model_store=store_dir, worker=False, feedback_per_minute=5, capture_fraction=1
    )
    service.start()
    try:
        with ThreadPoolExecutor(4) as callers:  # at once: both workers take some
            statuses = sorted(callers.map(lambda i: _correct(service.url, i % 10), range(12)))
        assert statuses == [201] * 5 + [429] * 7
        answer = requests.post(f"{service.url}/predict", json={"instances": [BLANK, BLANK]}, timeout=10)
        request_id = answer.headers["X-Request-ID"]  # nginx's: the client sent none
        assert answer.headers["Server"] == "nginx"
        named = {"request_id": request_id, "position": 1, "label": 8}
        for _ in range(50):  # kept just after the answer went out
            corrected = requests.post(f"{service.url}/feedback", json=named, timeout=10)
            if corrected.status_code != 404:
                break
        assert corrected.status_code == 429  # the same address, still over its rate
        listed = requests.get(f"{service.url}/feedback?corrected=false", headers=AUTH, timeout=10).json()
        assert [(e["request_id"], e["position"]) for e in listed["examples"]] == [
            (request_id, 1),
            (request_id, 0),
        ]
        assert listed["examples"][0]["model"] == "mnist" and len(listed["examples"][0]["probabilities"]) == 10
        kept = listed["examples"][0]["id"]
        relabelled = requests.patch(
            f"{service.url}/feedback/{kept}", json={"label": 8}, headers=AUTH, timeout=10
        )
        assert relabelled.status_code == 200 and relabelled.json()["request_id"] == request_id
        summary = requests.get(f"{service.url}/feedback", headers=AUTH, timeout=10).json()["summary"]
        assert summary["corrections"] == 6 and summary["kept_inputs"] == 1
    finally:
        service.close()


def test_a_full_data_disk_refuses_corrections_and_keeps_the_stored_ones(tmp_path, store_dir, robustness):
    with small_disk(tmp_path / "data", 2048) as data:
        service = Service(tmp_path, model_store=store_dir, worker=False, data_dir=data)
        service.start()
        try:
            stored = [_correct(service.url, label) for label in range(5)]
            assert stored == [201] * 5
            filler = fill(data)
            robustness.fault("data disk full (the store of corrections)")
            refused = [
                requests.post(f"{service.url}/feedback", json={"pixels": [9] * 784, "label": 1}, timeout=10)
                for _ in range(40)  # beyond what the store's free pages take
            ]
            assert {r.status_code for r in refused} <= {201, 507} and refused[-1].status_code == 507
            assert "BACKPROP_DATA_DIR" in refused[-1].json()["error"]["message"]
            assert all(service.predict_ok(BLANK) for _ in range(10))
            filler.unlink()
            listed = requests.get(f"{service.url}/feedback?limit=500", headers=AUTH, timeout=10).json()
            labels = [e["label"] for e in listed["examples"] if e["label"] != 1]
            assert sorted(labels) == [0, 2, 3, 4] and listed["summary"]["per_label"][1] >= 1
            assert _correct(service.url, 7) == 201  # room again
            assert "Traceback" not in service.log() and service.proc.poll() is None
        finally:
            service.close()


def _correct_at(folder: str, start: float, results) -> None:
    store = FeedbackStore(Path(folder), max_examples=100, per_minute=100)
    while time.time() < start:
        pass
    try:
        store.correct(np.zeros(784, np.uint8), 1, "10.0.0.1")
        results.put("stored")
    except Exception as exc:  # noqa: BLE001 - what went wrong is the test's answer
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_that_open_a_new_store_at_once_all_store_their_correction(tmp_path):
    # Two gunicorn workers may both be the first to write: the loser of the switch to WAL was told
    # "database is locked" at once (503) before the store tried again.
    for trial in range(8):
        folder, results = tmp_path / str(trial), multiprocessing.Queue()
        start = time.time() + 0.3
        racing = [
            multiprocessing.Process(target=_correct_at, args=(str(folder), start, results)) for _ in range(4)
        ]
        for process in racing:
            process.start()
        for process in racing:
            process.join(30)
        assert [results.get(timeout=5) for _ in racing] == ["stored"] * 4
        assert FeedbackStore(folder, max_examples=100, per_minute=100).summary()["corrections"] == 4
