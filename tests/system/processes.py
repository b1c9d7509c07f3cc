"""Real processes, servers and disks for the tests: a ``backprop serve``, a Redis server, a small
disk; the fault-injection tests also break them."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import TOKEN, free_port
from tests.system.procfs import children

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def wait_until(
    check: Callable[[], object],
    timeout: float,
    what: str,
    interval: float = 0.1,
    errors: tuple[type[Exception], ...] = (requests.RequestException,),
):
    """The first truthy value of ``check()`` (``errors`` count as not yet), or fail the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(*errors):
            value = check()
            if value:
                return value
        time.sleep(interval)
    pytest.fail(f"{what}: not within {timeout} s")


class Service:
    """``backprop serve`` (nginx, gunicorn with two workers, a training worker) on a free loopback
    port; ``front="none"`` for gunicorn alone, ``worker=False`` for no training worker."""

    def __init__(self, tmp_path: Path, *, worker: bool = True, **settings: object) -> None:
        self.command = [sys.executable, "-m", "service.cli", "serve", *([] if worker else ["--no-worker"])]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"serve-{self.port}.log"
        defaults = {
            "model_store": tmp_path / "store",
            "state_dir": tmp_path / "var",
            "data_dir": tmp_path / "data",  # the feedback store's too: never the repository's
            "workers": 2,
            "worker_nice": 0,
            "heartbeat_seconds": 0.2,
            "stale_seconds": 2,
            "api_token": TOKEN,
            "grpc_port": 0,  # tests of the gRPC side give it a port of its own
        }
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKPROP_", "PROMETHEUS_"))}
        for key, value in {**defaults, **settings}.items():
            if value is not None:  # None: the setting's own default (api_token=None: no token)
                self.env[f"BACKPROP_{key.upper()}"] = str(value)
        self.env["BACKPROP_PORT"] = str(self.port)
        self.proc: subprocess.Popen | None = None

    def start(self) -> Service:
        """Start it and wait until it is ready (the first /readyz loads the model: on a busy machine
        that takes seconds) and every worker of the pool that answers predictions is up (the first
        answers before the others have forked). Whoever calls this stops it with ``close`` or
        ``kill_all``, even when it never became ready."""
        # A file, not a pipe: a full pipe would block the server.
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(lambda: requests.get(f"{self.url}/readyz", timeout=10).ok, 60, "service ready")
        except pytest.fail.Exception:
            pytest.fail(f"backprop serve did not become ready; its log:\n{self.log()}")
        flags = self.command
        workers = int(
            flags[flags.index("--workers") + 1] if "--workers" in flags else self.env["BACKPROP_WORKERS"]
        )
        wait_until(lambda: len(children(self.gunicorn_pid())) >= workers, 30, f"{workers} gunicorn workers")
        return self

    @property
    def store(self) -> Path:
        return Path(self.env["BACKPROP_MODEL_STORE"])

    def log(self) -> str:
        return self.log_path.read_text()

    def worker_pid(self) -> int | None:
        found = [pid for pid, cmd in children(self.proc.pid) if "service.cli worker" in cmd]
        return found[0] if found else None

    def gunicorn_pid(self) -> int:
        return next(pid for pid, cmd in children(self.proc.pid) if "gunicorn" in cmd)

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM, as a supervisor would; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def close(self, timeout: float = 30) -> None:
        """Stop it gracefully if it still runs, by force if that takes too long."""
        if self.proc is None:
            return
        try:
            self.stop(timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()

    def kill_all(self) -> None:
        """SIGKILL the whole tree. Each child of ``backprop serve`` leads a process group of its own
        (nginx's workers are in their master's): the groups are killed, not only their leaders,
        or orphaned nginx workers would go on listening after the test."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for pid, _ in children(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait(timeout=10)

    # -- HTTP ------------------------------------------------------------------------------

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=10, **kwargs)

    def train(self, **body) -> requests.Response:
        return requests.post(f"{self.url}/train", json=body, headers=AUTH, timeout=10)

    def put_default(self, name: str, version: int) -> requests.Response:
        return requests.put(
            f"{self.url}/models/{name}/default", json={"version": version}, headers=AUTH, timeout=10
        )

    def job(self, job_id: str) -> dict:
        response = self.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def job_if_readable(self, job_id: str) -> dict | None:
        """The record, or None while the job store cannot give it (down, or just back empty and
        not yet restored by a reaper)."""
        response = self.get(f"/jobs/{job_id}")
        return response.json() if response.status_code == 200 else None

    def wait_job(self, job_id: str, statuses: tuple[str, ...], timeout: float = 90) -> dict:
        def ended():
            job = self.job_if_readable(job_id)
            return job is not None and job["status"] in statuses and job

        return wait_until(ended, timeout, f"job {job_id} {statuses}")

    def wait_training(self, job_id: str, timeout: float = 60) -> dict:
        def going():
            job = self.job_if_readable(job_id)
            return job is not None and job["status"] == "running" and job["progress"]["step"] > 0 and job

        return wait_until(going, timeout, f"job {job_id} training")

    def predict_ok(self, pixels: list[int]) -> bool:
        response = requests.post(f"{self.url}/predict", json={"pixels": pixels}, timeout=10)
        return response.status_code == 200 and len(response.json()["predictions"]) == 1


def train_and_wait(base: str, **fields) -> str:
    """Train a small MNIST model through ``base``'s API (``fields`` override) and wait until it is
    saved; the job's id."""
    body = {"dataset": "mnist", "hidden": [32], "epochs": 2, "batch_size": 128, **fields}
    job = requests.post(f"{base}/train", json=body, headers=AUTH, timeout=10).json()["id"]
    wait_until(
        lambda: requests.get(f"{base}/jobs/{job}", timeout=5).json()["status"] == "succeeded", 120, "job done"
    )
    return job


@contextlib.contextmanager
def running(tmp_path: Path, **settings: object) -> Iterator[Service]:
    """A started ``Service``, stopped afterwards whatever happened, even if it never came up."""
    service = Service(tmp_path, **settings)
    try:
        yield service.start()
    finally:
        service.close()


class RedisServer:
    """A private redis-server on a fixed port that tests may stop, kill and start again."""

    def __init__(self, folder: Path, *, persistent: bool) -> None:
        self.folder, self.persistent = folder, persistent
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server not found: run ./scripts/test, which installs it")
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else []
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + persistence
            + ["--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis.from_url(self.url)
        wait_until(client.ping, 10, "redis up", interval=0.05, errors=(redis.RedisError,))
        client.close()
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def small_disk(path: Path, size_kib: int) -> Iterator[Path]:
    """A real size-limited file system (tmpfs) at ``path``: root can mount one, others skip."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here ({mounted.stderr.strip()}); run as root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path, leave_kib: int = 0) -> Path:
    """Fill ``folder``'s file system, leaving about ``leave_kib`` KiB free; the filler file."""
    filler = folder / f"filler-{len(list(folder.glob('filler*')))}"
    free = shutil.disk_usage(folder).free - leave_kib * 1024
    with filler.open("wb") as f, contextlib.suppress(OSError):
        while free > 0:
            chunk = min(free, 1 << 20)
            f.write(b"\0" * chunk)
            f.flush()
            free -= chunk
    return filler


def partial_files(store: Path) -> list[Path]:
    """Temporary files, and model files without their sidecar: what a failed write leaves."""
    left = [p for p in store.rglob(".tmp*")]
    return left + [npz for npz in store.rglob("*.npz") if not npz.with_suffix(".json").is_file()]
