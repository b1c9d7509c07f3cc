"""Load with faults: 10 s of mixed /predict traffic through the real front (wrk, 8 keep-alive
connections) while a job trains, and one gunicorn worker is SIGKILLed in the middle of it."""

import json
import os
import signal
import threading
import time

import numpy as np
import pytest
import requests

from benchmarks.serving import JSON, RAW, wrk
from tests.system.processes import AUTH, Service, partial_files, wait_until
from tests.system.procfs import children

pytestmark = pytest.mark.slow

LOAD_SECONDS = 10
KILL_AFTER_SECONDS = 4
CONNECTIONS = 8
MAY_FAIL = 2
# Longer than the load on any machine (CI's finished 30 epochs before the kill): cancelled after it.
TRAINING = {"hidden": [256, 128], "epochs": 500}


def _bodies(folder, digits: np.ndarray) -> list:
    one, batch, raw = folder / "one.json", folder / "batch.json", folder / "raw.bin"
    one.write_text(json.dumps({"pixels": digits[0].tolist()}))
    batch.write_text(json.dumps({"instances": digits[:32].tolist()}))
    raw.write_bytes(digits[:8].tobytes())
    return [(one, JSON), (batch, JSON), (one, JSON), (raw, RAW)]


def test_predictions_survive_a_killed_worker_while_a_job_trains(
    tmp_path, store_dir, mnist5k_dir, real_digits, robustness
):
    service = Service(tmp_path, model_store=store_dir, data_dir=mnist5k_dir, worker_nice=10).start()
    try:
        job = service.train(dataset="mnist", model="under-load", **TRAINING).json()
        wait_until(lambda: service.job(job["id"])["status"] == "running", 30, "job running")
        result: dict = {}
        load = threading.Thread(
            target=lambda: result.update(
                wrk(
                    f"{service.url}/predict",
                    _bodies(tmp_path, real_digits[0]),
                    duration=LOAD_SECONDS,
                    connections=CONNECTIONS,
                    workdir=tmp_path,
                )
            )
        )
        load.start()
        time.sleep(KILL_AFTER_SECONDS)
        workers = [pid for pid, _ in children(service.gunicorn_pid())]
        assert len(workers) == 2 and service.job(job["id"])["status"] == "running"
        os.kill(workers[0], signal.SIGKILL)
        robustness.fault("SIGKILL of a gunicorn worker under load")
        load.join(timeout=LOAD_SECONDS + 60)
        after_load = service.job(job["id"])
        replaced = [pid for pid, _ in children(service.gunicorn_pid())]

        robustness.record(
            "load_with_faults",
            seconds=round(result["seconds"], 1),
            connections=CONNECTIONS,
            requests=result["requests"],
            failed=result["errors"] + result["non_2xx"],
            requests_per_second=round(result["requests_per_second"], 1),
            p50_ms=round(result["p50_ms"], 2),
            p99_ms=round(result["p99_ms"], 2),
            job_after_load=after_load["status"],
            partial_model_files=len(partial_files(service.store)),
        )
        assert result["requests"] > 1000
        # nginx sends a prediction whose worker died before answering to the other worker. Only a
        # response the kill cuts off after nginx began passing it on could still fail: 18 runs of
        # 21 on this machine had no failed request, three had one.
        assert result["non_2xx"] == 0 and result["errors"] <= MAY_FAIL, (result, service.log()[-3000:])
        # The training went on undisturbed through the load and the kill, in its first attempt.
        assert after_load["status"] == "running" and after_load["attempts"] == 1, after_load
        assert requests.post(f"{service.url}/jobs/{job['id']}/cancel", headers=AUTH, timeout=10).ok
        assert service.wait_job(job["id"], ("cancelled",), timeout=60)["attempts"] == 1
        assert len(replaced) == 2 and workers[0] not in replaced  # gunicorn replaced the dead one
        assert not partial_files(service.store)
    finally:
        service.close()
