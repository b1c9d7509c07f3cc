"""Real ``backprop worker`` processes on the embedded (SQLite) queue and on a real redis-server."""

import os
import signal
import subprocess
import sys
import time

import pytest

from service.jobs.queue import JobQueue
from service.jobs.schemas import JobRecord, TrainRequest
from service.settings import Settings
from service.store import ModelStore
from tests.system.processes import partial_files

pytestmark = pytest.mark.slow

QUICK = {"hidden": (16,), "epochs": 2}
LONG = {"hidden": (128,), "epochs": 300}


class Workers:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = {
            **os.environ,
            **{
                f"BACKPROP_{k.upper()}": str(v)
                for k, v in {
                    "model_store": settings.model_store,
                    "data_dir": settings.data_dir,
                    "state_dir": settings.state_dir,
                    "heartbeat_seconds": settings.heartbeat_seconds,
                    "stale_seconds": settings.stale_seconds,
                    "job_max_attempts": settings.job_max_attempts,
                    "worker_nice": 0,
                }.items()
            },
        }
        if settings.redis_url:
            self.env["BACKPROP_REDIS_URL"] = settings.redis_url
        self.procs: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            proc.wait(timeout=30)


def _backend(tmp_path, mnist5k_dir, redis_url):
    settings = Settings(
        model_store=tmp_path / "store",
        data_dir=mnist5k_dir,
        state_dir=tmp_path / "var",
        redis_url=redis_url,
        heartbeat_seconds=0.2,
        stale_seconds=3,
        job_max_attempts=1,
    )
    return settings, JobQueue(settings), Workers(settings)


@pytest.fixture(params=["sqlite", "redis"])
def backend(request, tmp_path, mnist5k_dir):
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    settings, queue, workers = _backend(tmp_path, mnist5k_dir, redis_url)
    yield settings, queue, workers
    workers.stop_all()


@pytest.fixture
def shared_backend(tmp_path, mnist5k_dir, redis_url):
    """Two workers (as on two machines) on one Redis queue and one model store."""
    settings, queue, workers = _backend(tmp_path, mnist5k_dir, redis_url)
    workers.start()
    workers.start()
    yield settings, queue, workers
    workers.stop_all()


def wait_for(queue: JobQueue, job_id: str, statuses, timeout: float = 60) -> JobRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = queue.get(job_id)
        if record.status in statuses:
            return record
        time.sleep(0.05)
    pytest.fail(f"job {job_id} still {queue.get(job_id).status} after {timeout}s")


def wait_running(queue: JobQueue, job_id: str) -> JobRecord:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record = queue.get(job_id)
        if record.status == "running" and record.progress.step > 0:
            return record
        time.sleep(0.05)
    pytest.fail(f"job {job_id} never got going")


def submit(queue: JobQueue, **fields) -> str:
    return queue.submit(TrainRequest(**fields)).id


def test_lifecycle(backend):
    settings, queue, workers = backend
    workers.start()
    done = wait_for(queue, submit(queue, **QUICK, model="digits"), ["succeeded"])
    assert done.result.version == 1 and len(done.history) == 2

    long_job = submit(queue, **LONG, model="digits")
    waiting = submit(queue, **QUICK, model="digits")  # queued behind the long one (one job at a time)
    wait_running(queue, long_job)
    assert queue.get(waiting).status == "queued"
    assert queue.cancel(waiting).status == "cancelled"
    queue.cancel(long_job)
    cancelled = wait_for(queue, long_job, ["cancelled"], timeout=30)
    assert cancelled.progress.percent < 100
    time.sleep(0.5)
    assert queue.get(waiting).started_at is None  # a cancelled queued job never starts
    assert ModelStore(settings.model_store).versions("digits") == [1]  # cancelled jobs write no model

    workers.stop_all()  # a restart keeps queued jobs
    pending = submit(queue, **QUICK, model="digits")
    time.sleep(0.5)
    assert queue.get(pending).status == "queued"
    workers.start()
    assert wait_for(queue, pending, ["succeeded"]).result.version == 2
    assert not partial_files(settings.model_store)


def test_two_workers_share_four_jobs_each_exactly_once(shared_backend):
    settings, queue, _ = shared_backend
    ids = [submit(queue, **QUICK, model="shared", seed=i) for i in range(4)]
    records = [wait_for(queue, job_id, ["succeeded", "failed"]) for job_id in ids]
    assert [r.status for r in records] == ["succeeded"] * 4
    assert [r.attempts for r in records] == [1] * 4
    store = ModelStore(settings.model_store)
    assert store.versions("shared") == [1, 2, 3, 4]
    assert sorted(store.metadata("shared", v)["job"] for v in range(1, 5)) == sorted(ids)
    assert sorted(r.result.version for r in records) == [1, 2, 3, 4]


def test_a_killed_worker_is_noticed_and_the_other_keeps_working(shared_backend):
    settings, queue, _ = shared_backend
    victim_job = submit(queue, **LONG, model="digits")
    running = wait_running(queue, victim_job)
    victim_pid = int(running.worker.split(":")[1])  # host:pid:token
    os.kill(victim_pid, signal.SIGKILL)
    started = time.monotonic()
    failed = wait_for(queue, victim_job, ["failed"], timeout=60)
    assert time.monotonic() - started < 60
    assert "stopped reporting in" in failed.error and failed.lost_attempts[0]["worker"] == running.worker
    assert not partial_files(settings.model_store)
    assert not ModelStore(settings.model_store).versions("digits")
    survivor = wait_for(queue, submit(queue, **QUICK, model="after"), ["succeeded"])
    assert survivor.worker != running.worker


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_worker_puts_its_job_back_at_once_without_an_attempt(backend, sig):
    settings, queue, workers = backend
    proc = workers.start()
    job_id = submit(queue, **LONG, model="digits")
    wait_running(queue, job_id)
    proc.send_signal(sig)  # a supervisor's SIGTERM, or Ctrl-C at a terminal
    assert proc.wait(timeout=15) == 0
    record = queue.get(job_id)
    assert record.status == "queued" and record.attempts == 0 and record.lost_attempts == []
    assert record.events[-1].event == "interrupted"
    assert job_id in queue.pending()  # on the queue again, not waiting for the reaper
    assert not ModelStore(settings.model_store).versions("digits")


def test_a_worker_waits_for_redis_to_come_up_then_gives_up_in_time(tmp_path, digits_dir):
    # As in a compose stack, where the workers may start before Redis answers.
    from tests.system.processes import RedisServer, wait_until

    redis = RedisServer(tmp_path / "redis", persistent=True)
    settings = Settings(
        model_store=tmp_path / "store", data_dir=digits_dir, state_dir=tmp_path / "var", redis_url=redis.url
    )
    env = {**Workers(settings).env, "BACKPROP_OUTAGE_SECONDS": "60"}
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], env=env, stderr=log)
    try:
        wait_until(lambda: "waiting for the job store" in log_path.read_text(), 20, "the worker waits")
        assert worker.poll() is None
        redis.start()
        queue = JobQueue(settings)
        wait_until(lambda: len(queue.records.workers_alive()) == 1, 20, "the worker came in")
        job_id = queue.submit(TrainRequest(**QUICK, model="late")).id
        wait_until(lambda: queue.get(job_id).status == "succeeded", 60, "the job ran")
        assert "Traceback" not in log_path.read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        redis.stop()

    impatient = {**env, "BACKPROP_OUTAGE_SECONDS": "1"}
    command = [sys.executable, "-m", "service.cli", "worker"]
    gave_up = subprocess.run(command, env=impatient, capture_output=True, text=True, timeout=60)
    assert gave_up.returncode == 1 and "gave up after 1 s (BACKPROP_OUTAGE_SECONDS)" in gave_up.stderr
