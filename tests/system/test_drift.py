"""Drift through a real ``backprop serve`` with two gunicorn workers and BACKPROP_DRIFT on: a version
trained on MNIST answers 2,000 of its held-out digits and is ``ok``; copies of it answer 2,000
inverted, rotated or noise images and are ``drifting``, by the route and by /metrics alike."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests

from benchmarks.serving import requests_per_worker, spread
from service.data import load_dataset
from service.store import ModelStore
from service.training import TrainingConfig, split_indices, train_and_save
from tests.conftest import copy_shipped_store
from tests.system.processes import Service

IMAGES = 2000


def _send(url: str, version: int, images: np.ndarray) -> None:
    batches = [images[start : start + 25] for start in range(0, len(images), 25)]

    def post(batch: np.ndarray) -> int:
        return requests.post(
            f"{url}/predict?model=drifty&version={version}",
            data=batch.tobytes(),
            headers={"Content-Type": "application/octet-stream"},
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(8) as callers:  # 8 at once: both workers answer
        assert set(callers.map(post, batches)) == {200}


def _counted(text: str, version: int) -> float:
    prefix = 'backprop_drift_answers_total{confidence="'
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix) and 'model="drifty"' in line and f'version="{version}"' in line
    )


def test_held_out_digits_are_ok_and_strange_ones_drift(tmp_path, mnist_dir):
    store = ModelStore(copy_shipped_store(tmp_path / "store"))
    dataset = load_dataset("mnist", mnist_dir)
    config = TrainingConfig(hidden=(32,), epochs=1)
    meta, result = train_and_save(config, dataset, store, "drifty")
    for _ in range(3):  # v2-v4: the same network and reference, one window each
        store.save("drifty", result.network, {"drift_reference": meta["drift_reference"]})
    rng = np.random.default_rng(0)
    held_out = dataset.train_x[split_indices(config, dataset.train_y)[1]][:IMAGES]
    strange = {
        2: 255 - held_out,
        3: np.rot90(held_out.reshape(-1, 28, 28), axes=(1, 2)).reshape(-1, 784),
        4: rng.integers(0, 256, held_out.shape, dtype=np.uint8),
    }

    service = Service(tmp_path, model_store=store.root, worker=False, drift=True).start()
    try:
        before = requests_per_worker(tmp_path / "var" / "prometheus")
        _send(service.url, 1, held_out)
        assert (
            len(spread(before, requests_per_worker(tmp_path / "var" / "prometheus"))["requests_per_worker"])
            == 2
        )
        for version, images in strange.items():
            _send(service.url, version, images)

        reports = {v: service.get(f"/models/drifty/versions/{v}/drift").json() for v in range(1, 5)}
        assert reports[1]["status"] == "ok" and reports[1]["predictions"] == IMAGES, reports[1]
        assert reports[1]["labels_psi"] < 0.1 and reports[1]["ood_share"] < 0.02
        for version in strange:
            report = reports[version]
            assert report["status"] == "drifting" and report["predictions"] == IMAGES, report
            assert report["reasons"] and report["labels_psi"] is not None
        metrics = service.get("/metrics").text
        assert [_counted(metrics, v) for v in range(1, 5)] == [IMAGES] * 4
        shares = [  # the reference, for Prometheus's own PSI (docs/operations.md#drift)
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("backprop_drift_reference_share{")
            and 'kind="label"' in line
            and 'model="drifty"' in line
            and 'version="1"' in line
        ]
        assert len(shares) == 10 and abs(sum(shares) - 1) < 1e-3
    finally:
        service.close()
