"""Integration: the real ``backprop serve`` (gunicorn, two workers) spoken to with ``requests``."""

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from benchmarks.serving import requests_per_worker, spread
from tests.conftest import TOKEN, free_port
from tests.system.processes import wait_until
from tests.system.procfs import children, cpu_seconds, with_environment

pytestmark = pytest.mark.slow


def test_predict_models_and_errors_over_http(module_server, real_digits):
    base, _ = module_server
    images, labels = real_digits
    batch = requests.post(f"{base}/predict", json={"instances": images.tolist()}, timeout=30).json()
    assert np.mean(np.array([p["label"] for p in batch["predictions"]]) == labels) >= 0.96
    raw = requests.post(
        f"{base}/predict",
        data=images.tobytes(),
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    ).json()
    assert [p["label"] for p in raw["predictions"]] == [p["label"] for p in batch["predictions"]]
    bad = requests.post(f"{base}/predict", json={"pixels": [0] * 10}, timeout=5)
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["loc"] == ["pixels"]
    assert requests.get(f"{base}/nowhere", timeout=5).json()["error"]["code"] == "not_found"
    assert requests.put(f"{base}/models/mnist/default", json={"version": 1}, timeout=5).status_code == 401
    authorized = requests.put(
        f"{base}/models/mnist/default",
        json={"version": 1},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    assert authorized.status_code == 200
    assert requests.get(f"{base}/openapi.json", timeout=5).json()["info"]["title"] == "backprop-service"


def test_metrics_add_up_across_workers(service):
    svc = service()
    metrics_dir = Path(svc.env["BACKPROP_STATE_DIR"]) / "prometheus"
    before = requests_per_worker(metrics_dir)

    def client(_):
        with requests.Session() as session:
            for _ in range(5):
                session.get(f"{svc.url}/healthz", timeout=5)

    # The first worker takes what it can (service.gunicorn_worker): health answers are quick, and
    # on a slow machine one round of 8 clients may never find it busy. Rounds go on until the
    # second worker has answered some.
    sent, answered = 0, []
    while len(answered) < 2 and sent < 40 * 25:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(client, range(8)))
        sent += 40
        answered = spread(before, requests_per_worker(metrics_dir))["requests_per_worker"]
    assert len(answered) == 2, (sent, answered)
    text = requests.get(f"{svc.url}/metrics", timeout=5).text
    line = next(
        x for x in text.splitlines() if x.startswith('backprop_http_requests_total{endpoint="/healthz"')
    )
    assert float(line.rsplit(" ", 1)[1]) == sent == sum(answered)


def test_each_pool_master_loads_the_app_once_and_its_workers_fork_with_it(service):
    svc = service(worker=False)
    masters = [pid for pid, cmd in children(svc.proc.pid) if "gunicorn" in cmd]
    assert len(masters) == 2  # the cheap pool and the expensive one
    for master in masters:
        # /readyz answers from the cheap pool: the expensive one may still be importing
        workers = wait_until(lambda: [pid for pid, _ in children(master)], 30, f"workers of {master}")  # noqa: B023
        assert "_multiarray_umath" in Path(f"/proc/{master}/maps").read_text()  # NumPy, with the app
        for worker in workers:  # importing the app takes over a second of CPU; building it, tens of ms
            assert cpu_seconds(worker) < cpu_seconds(master) / 3, (master, worker)


def test_a_v2_client_through_the_front(module_server, real_digits):
    import tritonclient.http as triton

    base, _ = module_server
    images = real_digits[0][:100]
    client = triton.InferenceServerClient(base.removeprefix("http://"), network_timeout=30.0)
    try:
        assert client.is_server_ready() and client.is_model_ready("mnist")
        pixels = triton.InferInput("pixels", [100, 28, 28], "UINT8").set_data_from_numpy(
            images.reshape(-1, 28, 28)
        )
        labels = client.infer("mnist", [pixels]).as_numpy("label")
    finally:
        client.close()
    predicted = requests.post(f"{base}/predict", json={"instances": images.tolist()}, timeout=30).json()
    assert labels.tolist() == [p["label"] for p in predicted["predictions"]]


def test_sigterm_shuts_down_cleanly(server):
    _, proc = server
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def _serve_until_it_exits(env: dict[str, str], *, timeout: float) -> subprocess.CompletedProcess:
    """Run ``backprop serve`` with ``env``, for a case where it must refuse to run."""
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_serve_refuses_a_public_bind_without_a_token(tmp_path):
    env = {**os.environ, "BACKPROP_HOST": "0.0.0.0", "BACKPROP_PORT": str(free_port())}
    env.pop("BACKPROP_API_TOKEN", None)
    env.pop("BACKPROP_ALLOW_INSECURE", None)
    result = _serve_until_it_exits(env, timeout=30)
    assert result.returncode != 0 and "BACKPROP_API_TOKEN" in result.stderr


def test_train_over_http_then_predict_with_the_new_version(server, real_digits):
    from service.client import Client, Unauthorized

    base, _ = server
    with pytest.raises(Unauthorized):
        Client(base).train(dataset="mnist", epochs=1)
    client = Client(base, token=TOKEN)
    accepted = client.train(dataset="mnist", model="fresh", hidden=[64], epochs=8)
    assert accepted["status"] == "queued" and accepted["location"] == f"/jobs/{accepted['id']}"
    job = client.wait(accepted["id"], poll=0.2, timeout=120)
    assert len(job["history"]) == 8 and job["progress"]["percent"] == 100.0
    version = job["result"]["version"]
    images, labels = real_digits
    answer = client.predict(images, model="fresh", version=version)
    assert (answer.model, answer.version) == ("fresh", version)
    assert np.mean(np.array(answer.labels) == labels) > 0.9
    assert client.jobs()["jobs"][0]["id"] == job["id"]


def test_backprop_health_reports_readiness(module_server):
    from tests.system.processes import wait_until

    base, _ = module_server
    # backprop serve runs a training worker: /readyz counts it once it has said so.
    workers = lambda: requests.get(f"{base}/readyz", timeout=5).json()["training_workers"]  # noqa: E731
    wait_until(lambda: workers() == 1, 30, "the training worker counted")
    ok = subprocess.run(
        [sys.executable, "-m", "service.cli", "health", "--url", base], capture_output=True, text=True
    )
    assert ok.returncode == 0 and '"ready"' in ok.stdout
    dead = f"http://127.0.0.1:{free_port()}"
    down = subprocess.run(
        [sys.executable, "-m", "service.cli", "health", "--url", dead, "--timeout", "2"],
        capture_output=True,
        text=True,
    )
    assert down.returncode == 1 and dead in down.stderr


def test_serve_stops_entirely_when_gunicorn_cannot_start(tmp_path):
    env = {
        **os.environ,
        "GUNICORN_CMD_ARGS": "--worker-class no.such.Worker",
        "BACKPROP_STATE_DIR": str(tmp_path),
    }
    result = _serve_until_it_exits(env, timeout=90)
    assert result.returncode != 0 and "gunicorn exited with status" in result.stderr
    # nothing it started is left behind: not nginx, not the training worker
    wait_until(
        lambda: not with_environment("BACKPROP_STATE_DIR", str(tmp_path)), 10, "the service's processes gone"
    )


def test_an_empty_token_stops_serve_before_it_listens(tmp_path):
    env = {
        **os.environ,
        "BACKPROP_API_TOKEN": "",
        "BACKPROP_HOST": "0.0.0.0",
        "BACKPROP_STATE_DIR": str(tmp_path),
    }
    result = _serve_until_it_exits(env, timeout=30)
    assert result.returncode == 2 and "at least 16 characters" in result.stderr


@pytest.mark.parametrize(
    "bind",
    [{"BACKPROP_HOST": "0.0.0.0"}, {"GUNICORN_CMD_ARGS": f"--bind 0.0.0.0:{free_port()}"}],
    ids=["backprop-host", "gunicorn-cmd-args"],  # the second skips BACKPROP_HOST entirely
)
def test_gunicorn_refuses_an_open_public_bind_wherever_it_comes_from(tmp_path, bind):
    env = {**os.environ, **bind, "BACKPROP_STATE_DIR": str(tmp_path)}
    env.pop("BACKPROP_API_TOKEN", None)
    env.pop("BACKPROP_ALLOW_INSECURE", None)
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0 and "refusing to listen on 0.0.0.0" in result.stderr


def test_every_process_of_serve_logs_json_lines_when_asked(tmp_path, store_dir):
    from tests.system.processes import Service, wait_until

    service = Service(tmp_path, model_store=store_dir, log_format="json").start()
    try:
        wait_until(lambda: "Huey consumer started" in service.log(), 30, "the training worker logged")
    finally:
        service.close()
    lines = [json.loads(line) for line in service.log().splitlines() if line.startswith("{")]
    loggers = {line["logger"] for line in lines}
    assert {"gunicorn.error", "service.access", "huey.consumer"} <= loggers  # gunicorn, app, worker
    assert all(set(line) >= {"time", "level", "logger", "pid", "message"} for line in lines)
    # What is not JSON: the CLI's word to people at start, and nginx's own error log (plain).
    others = [line for line in service.log().splitlines() if line and not line.startswith("{")]
    assert all(line.startswith(("serving on", "+ ", "20")) for line in others), others[:5]
