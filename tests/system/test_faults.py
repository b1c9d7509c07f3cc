"""Fault injection, for real: SIGKILL and SIGTERM of actual processes, a Redis server restarted
with and without persistence, size-limited file systems for the model store and the state folder.
Everything is checked through HTTP: no finished model is lost, no partial file remains, the
service keeps predicting, and every job ends in a truthful state."""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests

from benchmarks.traffic_shadow import candidate
from tests.conftest import copy_shipped_store
from tests.system.processes import AUTH, RedisServer, fill, partial_files, small_disk, wait_until
from tests.system.procfs import alive

pytestmark = pytest.mark.slow

BLANK = [0] * 784
QUICK = {"hidden": [16], "epochs": 2}
# Long enough to be caught mid-run, short enough to finish in a test: about 8 s on mnist-5k.
STEADY = {"hidden": [256], "epochs": 100}


@pytest.fixture
def redis_servers(tmp_path):
    servers: list[RedisServer] = []

    def start(*, persistent: bool) -> RedisServer:
        servers.append(RedisServer(tmp_path / f"redis-{len(servers)}", persistent=persistent))
        return servers[-1].start()

    yield start
    for server in servers:
        server.stop(signal.SIGKILL)


def test_a_killed_training_worker_is_restarted_while_the_api_keeps_serving(service, robustness):
    svc = service()
    first = wait_until(svc.worker_pid, 10, "training worker started")
    os.kill(first, signal.SIGKILL)  # as the out-of-memory killer would
    robustness.fault("SIGKILL of the training worker")
    assert all(svc.predict_ok(BLANK) for _ in range(30))
    second = wait_until(
        lambda: (pid := svc.worker_pid()) not in (None, first) and pid, 15, "worker restarted"
    )
    assert svc.proc.poll() is None and "restarting it in" in svc.log()
    job = svc.train(**QUICK, model="after-restart").json()
    assert svc.wait_job(job["id"], ("succeeded", "failed"))["status"] == "succeeded"
    assert svc.worker_pid() == second

    os.kill(svc.gunicorn_pid(), signal.SIGKILL)  # the API itself is gone: nothing to go on with
    robustness.fault("SIGKILL of the gunicorn master")
    assert svc.proc.wait(timeout=20) != 0
    wait_until(lambda: not alive(second), 20, "training worker stopped with the service")


def test_clean_stops_put_the_running_job_back_without_using_an_attempt(service, robustness):
    # One attempt allowed: a clean stop that counted as a lost attempt would fail the job at once.
    svc = service(job_max_attempts=1)
    job_id = svc.train(**STEADY, model="steady").json()["id"]
    for restart in (1, 2):
        svc.wait_training(job_id)
        started = time.monotonic()
        assert svc.stop() == 0
        robustness.fault("SIGTERM of backprop serve while a job trains")
        assert time.monotonic() - started < 15  # stopped at a batch boundary, not at the job's end
        svc = service(job_max_attempts=1)
        job = svc.job(job_id)
        assert job["status"] in ("queued", "running") and job["lost_attempts"] == []
        assert [e["event"] for e in job["events"]] == ["interrupted"] * restart
    done = svc.wait_job(job_id, ("succeeded", "failed"), timeout=120)
    assert done["status"] == "succeeded" and done["attempts"] == 1 and done["lost_attempts"] == []
    assert len(done["history"]) == STEADY["epochs"]
    assert svc.get(f"/models/steady/versions/{done['result']['version']}").status_code == 200
    assert not partial_files(svc.store)


def test_a_redis_outage_costs_no_attempt(service, redis_servers, robustness):
    redis = redis_servers(persistent=True)
    svc = service(redis_url=redis.url, job_max_attempts=1)
    job_id = svc.train(**STEADY, model="outage").json()["id"]
    svc.wait_training(job_id)
    redis.stop()  # for three times stale_seconds: nobody can beat, and nobody can watch
    robustness.fault("Redis stopped for 6 s while a job trains")
    time.sleep(6)
    assert svc.predict_ok(BLANK)  # predictions never needed Redis
    assert svc.get(f"/jobs/{job_id}").status_code == 503
    redis.start()
    done = svc.wait_job(job_id, ("succeeded", "failed"), timeout=120)
    assert done["status"] == "succeeded" and done["attempts"] == 1 and done["lost_attempts"] == []
    assert len(done["history"]) == STEADY["epochs"]  # the epochs of the outage were written later


def test_redis_restarted_without_persistence_loses_no_job(service, redis_servers, robustness):
    redis = redis_servers(persistent=False)
    svc = service(redis_url=redis.url)
    running = svc.train(**STEADY, model="forgetful").json()["id"]
    waiting = svc.train(**QUICK, model="forgetful").json()["id"]
    svc.wait_training(running)
    assert svc.job(waiting)["status"] == "queued"
    time.sleep(1.5)  # the reapers have seen both jobs
    assert "keeps no persistence" in svc.log()  # warned at start

    redis.stop(signal.SIGKILL)
    redis.start()  # empty
    robustness.fault("SIGKILL of Redis without persistence, restarted empty")
    for job_id in (running, waiting):
        done = svc.wait_job(job_id, ("succeeded", "failed"), timeout=120)
        assert done["status"] == "succeeded", done
        assert "restored" in [e["event"] for e in done["events"]]
    assert sorted(svc.job(j)["result"]["version"] for j in (running, waiting)) == [1, 2]


def test_a_full_model_store(service, tmp_path, robustness):
    with small_disk(tmp_path / "small-store", 7 * 1024) as store:
        copy_shipped_store(store)
        svc = service(model_store=store)
        fill(store, leave_kib=200)  # room for a pointer file, not for a model
        robustness.fault("model store disk full")

        big = {"hidden": [256], "epochs": 1, "model": "big"}  # 0.8 MB: more than is left
        failed = svc.wait_job(svc.train(**big).json()["id"], ("failed", "succeeded"))
        assert failed["status"] == "failed" and "No space left" in failed["error"], failed
        assert not partial_files(store)
        assert svc.get("/models/big").status_code == 404

        again = svc.put_default("mnist", 1)
        assert again.status_code == 200  # the failed save left nothing that holds the space
        fill(store)
        full = svc.put_default("mnist", 1)
        assert full.status_code == 507 and full.json()["error"]["code"] == "insufficient_storage"
        assert not partial_files(store) and svc.predict_ok(BLANK)
        assert svc.get("/readyz").status_code == 200

        for filler in store.glob("filler*"):
            filler.unlink()  # space again: the same job now succeeds
        done = svc.wait_job(svc.train(**big).json()["id"], ("failed", "succeeded"))
        assert done["status"] == "succeeded" and done["result"]["version"] == 1
        svc.stop()


def test_a_full_state_folder_leaves_prediction_working(service, store_dir, tmp_path, robustness):
    candidate(store_dir)  # mnist v2, to shadow: the shadow's pace file has no room either
    with small_disk(tmp_path / "small-state", 1024) as state:
        fill(state)
        robustness.fault("state disk full")
        svc = service(state_dir=state)
        shadow = {"split": {"1": 1}, "shadow": {"version": 2, "fraction": 1.0}}
        assert requests.put(f"{svc.url}/models/mnist/traffic", json=shadow, headers=AUTH, timeout=30).ok
        assert all(svc.predict_ok(BLANK) for _ in range(40))
        assert "keeps the pace of its own requests" in svc.log()
        assert all(svc.get("/healthz").status_code == 200 for _ in range(20))
        assert svc.get("/readyz").status_code == 200
        refused = svc.train(**QUICK)
        assert refused.status_code == 507, refused.text
        assert "BACKPROP_STATE_DIR" in refused.json()["error"]["message"]
        assert svc.get("/metrics").status_code == 200
        assert "SIGBUS" not in svc.log() and svc.proc.poll() is None
        svc.stop()


def test_a_diverging_job_fails_and_never_becomes_the_default(service):
    svc = service()
    body = {"optimizer": "sgd", "learning_rate": 10, "lr_schedule": "constant", "make_default": True}
    job = svc.wait_job(svc.train(**body, model="nan").json()["id"], ("failed", "succeeded"))
    assert job["status"] == "failed" and job["result"] is None
    assert "training diverged at epoch 1" in job["error"] and "nothing was saved" in job["error"]
    assert svc.get("/models/nan").status_code == 404
    assert svc.get("/readyz").json()["model"] == {"name": "mnist", "version": 1}
    assert svc.predict_ok(BLANK)


def test_runaway_and_hopeless_jobs_are_refused_at_the_request(service, tmp_path):
    svc = service(max_queued_jobs=1)
    busy = svc.train(**STEADY, model="busy").json()["id"]
    svc.wait_training(busy)  # the worker is taken; what follows waits in the queue
    assert svc.train(**QUICK).status_code == 202
    full = svc.train(**QUICK)
    assert full.status_code == 429 and int(full.headers["Retry-After"]) > 0
    huge = svc.train(hidden=[4096] * 8, epochs=500)
    assert huge.status_code == 422 and "BACKPROP_MAX_JOB_COST" in huge.json()["error"]["message"]
    bad_name = svc.train(**QUICK, model="a..b")
    assert bad_name.status_code == 422 and bad_name.json()["error"]["details"][0]["loc"] == ["model"]
    assert svc.stop() == 0

    no_data = service(data_dir=tmp_path / "empty")
    refused = no_data.train(**QUICK, dataset="mnist")
    assert refused.status_code == 422 and "BACKPROP_DATA_DIR" in refused.json()["error"]["message"]
    assert no_data.get("/jobs").json()["total"] == 2  # only the two accepted jobs of the first run
