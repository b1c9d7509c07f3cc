"""The scaled-out stack of compose.yaml, for real: Redis, two API replicas and two training workers in
containers, brought up with podman-compose (or docker compose) and checked through HTTP only.

These machines cannot publish ports, so an override file (written here) puts every container on
the host's network, on loopback ports of its own; the second API replica is the first one's
definition on another port. The official redis image cannot be pulled here either: a stand-in
(tests/fixtures/redis) is built and selected with BACKPROP_REDIS_IMAGE.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest
import requests
import yaml

from tests.conftest import REPO, TOKEN, free_port
from tests.model_files import good_model
from tests.system.containers import build, engine
from tests.system.processes import AUTH, wait_until

pytestmark = pytest.mark.slow

QUICK = {"hidden": [16], "epochs": 2}
STEADY = {"hidden": [256], "epochs": 60}  # long enough to be killed mid-run


class Stack:
    def __init__(self, workdir, mnist5k_dir, image: str) -> None:
        self.engine = engine()
        self.project = f"backprop-test-{uuid.uuid4().hex[:8]}"
        self.image = image  # the session's (tests/system/conftest.py), built once
        self.redis_image = build(self.engine, REPO / "tests/fixtures/redis", f"backprop-redis:{self.project}")
        self.redis_port, self.ports = free_port(), [free_port(), free_port()]
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        base = yaml.safe_load((REPO / "compose.yaml").read_text())
        host_only = {"network_mode": "host"}
        api2 = {
            **base["services"]["api"],
            **host_only,
            "environment": {"BACKPROP_PORT": str(self.ports[1]), "BACKPROP_GRPC_PORT": str(free_port())},
        }
        tuning = {
            "BACKPROP_HOST": "127.0.0.1",
            "BACKPROP_HEARTBEAT_SECONDS": "0.5",
            "BACKPROP_STALE_SECONDS": "3",
        }
        override = {
            "services": {
                "redis": {
                    **host_only,
                    "command": [
                        "redis-server",
                        "--appendonly",
                        "yes",
                        "--dir",
                        "/data",
                        "--bind",
                        "127.0.0.1",
                    ]
                    + ["--port", str(self.redis_port)],
                },
                "api": {
                    **host_only,
                    "environment": {
                        "BACKPROP_PORT": str(self.ports[0]),
                        "BACKPROP_GRPC_PORT": str(free_port()),
                        **tuning,
                    },
                },
                "api2": {**api2, "environment": {**api2["environment"], **tuning}},
                # The host's pids too, so that a job's record names the container running it.
                # Two workers, said here rather than with --scale: podman-compose's down only removes
                # the replicas the files declare.
                "worker": {**host_only, "pid": "host", "environment": tuning, "scale": 2},
            }
        }
        self.override = workdir / "compose.override.yaml"
        self.override.write_text(yaml.safe_dump(override))
        self.env = {
            **os.environ,
            "BACKPROP_IMAGE": self.image,
            "BACKPROP_REDIS_IMAGE": self.redis_image,
            "BACKPROP_REDIS_HOST": "127.0.0.1",
            "BACKPROP_REDIS_PORT": str(self.redis_port),
            "BACKPROP_API_TOKEN": TOKEN,
            "BACKPROP_DATA_VOLUME": str(mnist5k_dir),
        }
        if "podman" in self.engine[0]:
            self.compose = ["podman-compose", "--podman-path", self.engine[0]]
        else:
            self.compose = [*self.engine, "compose"]
        self.compose += ["-p", self.project, "-f", str(REPO / "compose.yaml"), "-f", str(self.override)]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.compose, *args], env=self.env, cwd=REPO, capture_output=True, text=True, timeout=timeout
        )

    def containers(self, service: str | None = None, everything: bool = False) -> list[str]:
        """Names of the project's running containers (of one service; stopped ones too if asked)."""
        names = subprocess.run(
            [*self.engine, "ps", *(["-a"] if everything else []), "--format", "{{.Names}}"]
            + ["--filter", f"name={self.project}"],
            capture_output=True,
            text=True,
        ).stdout.split()
        return sorted(n for n in names if service is None or f"_{service}_" in n)

    def volumes(self) -> list[str]:
        listing = [*self.engine, "volume", "ls", "--format", "{{.Name}}", "--filter", f"name={self.project}"]
        return subprocess.run(listing, capture_output=True, text=True).stdout.split()

    def pid(self, container: str) -> int:
        inspect = [*self.engine, "inspect", "--format", "{{.State.Pid}}", container]
        return int(subprocess.run(inspect, capture_output=True, text=True, check=True).stdout)

    def logs(self) -> str:
        return self.run("logs", timeout=60).stdout[-6000:]

    def job(self, job_id: str, url: str | None = None) -> dict | None:
        answer = requests.get(f"{url or self.urls[0]}/jobs/{job_id}", headers=AUTH, timeout=10)
        return answer.json() if answer.status_code == 200 else None

    def wait_job(self, job_id: str, timeout: float = 180) -> dict:
        def ended():
            job = self.job(job_id)
            return job is not None and job["status"] in ("succeeded", "failed") and job

        return wait_until(ended, timeout, f"job {job_id} ended")

    def train(self, **body) -> str:
        answer = requests.post(f"{self.urls[0]}/train", json=body, headers=AUTH, timeout=10)
        assert answer.status_code == 202, answer.text
        return answer.json()["id"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, mnist5k_dir, service_image):
    if shutil.which("podman-compose") is None and "docker" not in engine()[0]:
        pytest.fail("podman-compose not found: pip install -e '.[dev]' installs it")
    stack = Stack(tmp_path_factory.mktemp("compose"), mnist5k_dir, service_image[1])
    try:
        up = stack.run("up", "-d", "--no-build")
        assert up.returncode == 0, up.stderr[-3000:]
        for url in stack.urls:
            wait_until(lambda url=url: requests.get(f"{url}/readyz", timeout=5).ok, 120, f"{url} ready")
        workers = lambda: requests.get(f"{stack.urls[0]}/readyz", timeout=5).json()["training_workers"]  # noqa: E731
        wait_until(lambda: workers() == 2, 120, "two training workers")
        yield stack
    finally:
        down = stack.run("down", "-v", timeout=300)
        stack.down_output = down
        subprocess.run([*stack.engine, "rmi", "-f", stack.redis_image], capture_output=True)
    assert down.returncode == 0, down.stderr[-2000:]
    # down -v leaves nothing behind: no container, running or not, and no volume.
    assert stack.containers(everything=True) == [] and stack.volumes() == [], down.stdout[-2000:]


def test_a_job_runs_in_a_worker_container_and_every_replica_serves_it(stack):
    job = stack.wait_job(stack.train(**QUICK, model="stacked"))
    assert job["status"] == "succeeded", (job, stack.logs())
    version = job["result"]["version"]
    for url in stack.urls:  # the store is one volume: every replica finds the new version
        meta = requests.get(f"{url}/models/stacked/versions/{version}", timeout=10)
        assert meta.status_code == 200 and meta.json()["job"] == job["id"]
        answer = requests.post(
            f"{url}/predict", json={"pixels": [0] * 784, "model": "stacked"}, timeout=10
        ).json()
        assert answer["model"] == {"name": "stacked", "version": version}


def test_a_killed_worker_container_costs_a_retry_on_the_other_one(stack):
    job_id = stack.train(**STEADY, model="survivor")
    running = wait_until(
        lambda: (job := stack.job(job_id)) and job["status"] == "running" and job, 120, "job running"
    )
    # The workers share the host's pid namespace here (see the override), so the pid in the record
    # (host:pid:token) is the one podman reports for the container.
    pid = int(running["worker"].split(":")[1])
    victim = next(name for name in stack.containers("worker") if stack.pid(name) == pid)
    subprocess.run([*stack.engine, "kill", "-s", "KILL", victim], check=True, capture_output=True)
    done = stack.wait_job(job_id, timeout=300)
    assert done["status"] == "succeeded" and done["attempts"] == 2, (done, stack.logs())
    assert done["lost_attempts"] and done["worker"] != running["worker"]
    listing = requests.get(f"{stack.urls[1]}/models/survivor", timeout=10).json()
    assert [v["version"] for v in listing["versions"]] == [1] and listing["unavailable"] == []


def test_a_restart_of_redis_loses_no_queued_job(stack):
    stack.run("stop", "-t", "30", "worker", timeout=120)  # nothing runs the jobs meanwhile
    queued = [stack.train(**QUICK, model=f"kept-{i}") for i in range(3)]
    restarted = stack.run("restart", "redis", timeout=120)
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    wait_until(lambda: all(stack.job(j) for j in queued), 60, "the jobs readable again")
    assert all(stack.job(j)["status"] == "queued" for j in queued)
    stack.run("start", "worker", timeout=120)
    for job_id in queued:
        assert stack.wait_job(job_id)["status"] == "succeeded", stack.logs()


def test_a_policy_put_through_one_replica_is_applied_by_the_other_within_the_refresh_interval(stack):
    refresh = 1.0  # BACKPROP_DEFAULT_REFRESH_SECONDS, left at its default in compose.yaml
    upload = requests.post(
        f"{stack.urls[0]}/models/mnist/versions",
        data=good_model(),
        headers={**AUTH, "Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert upload.status_code == 201, upload.text
    candidate = upload.json()["version"]

    def applied_within(url: str, version: int) -> float:
        started = time.monotonic()
        while time.monotonic() - started < 10:
            answer = requests.post(f"{url}/predict", json={"pixels": [0] * 784, "model": "mnist"}, timeout=10)
            if answer.json()["model"]["version"] == version:
                return time.monotonic() - started
            time.sleep(0.05)
        pytest.fail(f"{url} still answers with another version than {version}")

    policy = {"split": {str(candidate): 1}}
    put = requests.put(f"{stack.urls[0]}/models/mnist/traffic", json=policy, headers=AUTH, timeout=30)
    assert put.status_code == 200, put.text
    assert applied_within(stack.urls[1], candidate) < refresh + 1.0
    deleted = requests.delete(f"{stack.urls[1]}/models/mnist/traffic", headers=AUTH, timeout=30)
    assert deleted.status_code == 204
    assert applied_within(stack.urls[0], 1) < refresh + 1.0
