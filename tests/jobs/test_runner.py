import os
import threading
import time

import pytest

from service.jobs.queue import JobQueue
from service.jobs.runner import run_job
from service.jobs.schemas import TrainRequest
from service.settings import Settings
from service.store import ModelStore
from tests.jobs import setting


@pytest.fixture
def job_settings(tmp_path, digits_dir):
    return Settings(
        model_store=tmp_path / "store",
        data_dir=digits_dir,
        state_dir=tmp_path / "var",
        heartbeat_seconds=0.05,
        stale_seconds=0.5,
    )


@pytest.fixture
def queue(job_settings):
    return JobQueue(job_settings)


def _submit(queue, **fields):
    return queue.submit(TrainRequest(**{"hidden": (16,), "epochs": 2, **fields})).id


def _training_in_a_thread(queue, job_settings, job_id, **options) -> threading.Thread:
    """``run_job`` in a thread, returned once the job has trained its first batch."""
    worker = threading.Thread(target=run_job, args=(job_settings, queue.records, job_id), kwargs=options)
    worker.start()
    deadline = time.monotonic() + 20
    while queue.get(job_id).progress.step == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    return worker


def test_a_job_trains_saves_and_records_everything(queue, job_settings):
    job_id = _submit(queue, model="digits", make_default=True)
    run_job(job_settings, queue.records, job_id)
    record = queue.get(job_id)
    assert record.status == "succeeded" and record.error is None and record.attempts == 1
    assert record.progress.percent == 100.0 and record.progress.epoch == 2
    assert [h["epoch"] for h in record.history] == [1, 2]
    assert record.started_at <= record.finished_at
    assert record.result.model == "digits" and record.result.version == 1
    store = ModelStore(job_settings.model_store)
    meta = store.metadata("digits", 1)
    assert meta["job"] == job_id and meta["training"]["epochs"] == 2
    assert store.resolve() == ("digits", 1)  # make_default


def test_without_make_default_the_default_stays(queue, job_settings):
    store = ModelStore(job_settings.model_store)
    first = _submit(queue, model="digits", make_default=True)
    run_job(job_settings, queue.records, first)
    second = _submit(queue, model="digits")
    run_job(job_settings, queue.records, second)
    assert store.versions("digits") == [1, 2] and store.default_version("digits") == 1


def test_a_job_runs_once_however_often_it_is_delivered(queue, job_settings):
    job_id = _submit(queue)
    run_job(job_settings, queue.records, job_id)
    run_job(job_settings, queue.records, job_id)
    assert queue.get(job_id).attempts == 1
    assert ModelStore(job_settings.model_store).versions("mnist") == [1]


def test_a_cancelled_queued_job_never_starts(queue, job_settings):
    job_id = _submit(queue)
    assert queue.cancel(job_id).status == "cancelled"
    run_job(job_settings, queue.records, job_id)
    record = queue.get(job_id)
    assert record.status == "cancelled" and record.started_at is None
    assert not ModelStore(job_settings.model_store).versions("mnist")


def test_a_running_job_stops_at_a_batch_and_writes_no_model(queue, job_settings):
    job_id = _submit(queue, epochs=400, hidden=(64,))
    worker = _training_in_a_thread(queue, job_settings, job_id)
    assert queue.cancel(job_id).cancel_requested
    worker.join(timeout=20)
    record = queue.get(job_id)
    assert record.status == "cancelled" and record.progress.percent < 100
    assert not ModelStore(job_settings.model_store).versions("mnist")
    assert not list((job_settings.model_store).glob("**/*.npz"))


def test_a_failing_job_records_a_readable_reason(queue, job_settings, tmp_path, monkeypatch):
    import dataclasses

    from service.data import catalogue

    # Nothing in an empty data folder, nor in Debian's system folder if this machine has it.
    info = dataclasses.replace(catalogue.DATASETS["fashion-mnist"], system_dirs=())
    monkeypatch.setitem(catalogue.DATASETS, "fashion-mnist", info)
    job_id = _submit(queue, dataset="fashion-mnist")
    run_job(job_settings.model_copy(update={"data_dir": tmp_path / "empty"}), queue.records, job_id)
    record = queue.get(job_id)
    assert record.status == "failed" and "dataset 'fashion-mnist' not found" in record.error
    assert record.finished_at is not None


def test_finished_jobs_cannot_be_cancelled(queue, job_settings):
    from service.errors import Conflict

    job_id = _submit(queue)
    run_job(job_settings, queue.records, job_id)
    with pytest.raises(Conflict, match="already succeeded"):
        queue.cancel(job_id)


def _reaper(queue, requeued):
    from service.jobs.reaper import Reaper

    return Reaper(queue.settings, queue.records, pending=queue.pending, requeue=requeued.append)


def _running(queue, attempts):
    job_id = _submit(queue)
    queue.records.update(
        job_id,
        setting(status="running", worker="gone:1", attempts=attempts, heartbeat_ts=12.5),
    )
    return job_id


def test_a_lost_worker_is_retried_then_given_up(queue, job_settings):
    job_id = _running(queue, attempts=1)
    requeued = []
    reaper = _reaper(queue, requeued)
    stale = job_settings.stale_seconds
    assert reaper.run_once(now=100.0) == []  # first sight: silence is measured from here
    assert reaper.run_once(now=100.0 + stale / 2) == []
    assert reaper.run_once(now=100.0 + stale) == [job_id] and requeued == [job_id]
    record = queue.get(job_id)
    assert record.status == "queued" and "stopped reporting in" in record.lost_attempts[0]["reason"]
    queue.records.update(job_id, setting(status="running", attempts=2, heartbeat_ts=13.5))
    assert reaper.run_once(now=200.0) == []
    assert reaper.run_once(now=200.0 + stale) == [job_id] and requeued == [job_id]
    record = queue.get(job_id)
    assert record.status == "failed" and "gave up after 2 attempts" in record.error


def test_live_jobs_are_left_alone(queue, job_settings):
    job_id = _running(queue, attempts=1)
    reaper = _reaper(queue, [])
    for beat in range(5):  # the heartbeat moves on between passes
        queue.records.update(job_id, setting(heartbeat_ts=float(beat)))
        assert reaper.run_once(now=100.0 + beat * job_settings.stale_seconds) == []


def test_silence_during_a_store_outage_does_not_count(queue, job_settings):
    from service.errors import QueueUnavailable

    job_id = _running(queue, attempts=1)
    reaper = _reaper(queue, [])
    reaper.run_once(now=0.0)
    real_active = queue.records.active
    queue.records.active = lambda: (_ for _ in ()).throw(QueueUnavailable("down"))
    with pytest.raises(QueueUnavailable):
        reaper.run_once(now=job_settings.stale_seconds * 10)
    queue.records.active = real_active
    # Back: the watch starts afresh, so the job's worker gets a full stale_seconds to beat again.
    assert reaper.run_once(now=job_settings.stale_seconds * 10 + 0.1) == []
    assert queue.get(job_id).status == "running"


def test_a_queued_job_the_queue_lost_is_put_back(queue, job_settings):
    job_id = _submit(queue)
    requeued = []
    reaper = _reaper(queue, requeued)
    assert job_id in queue.pending()
    assert reaper.run_once(now=0.0) == []
    queue.huey.flush()  # the queue loses its messages; the record still says queued
    assert reaper.run_once(now=1.0) == []
    assert reaper.run_once(now=1.0 + job_settings.stale_seconds) == [job_id] and requeued == [job_id]
    assert queue.get(job_id).events[0].event == "requeued"


def test_a_run_declared_lost_saves_nothing_when_it_finishes(queue, job_settings, monkeypatch):
    import service.training as training

    job_id = _submit(queue)
    real_train = training.train

    def train_then_get_taken_over(*args, **kwargs):
        result = real_train(*args, **kwargs)
        # Meanwhile the reaper requeued the job and another worker claimed it.
        queue.records.update(job_id, setting(worker="other-host:42", attempts=2))
        return result

    monkeypatch.setattr(training, "train", train_then_get_taken_over)
    run_job(job_settings, queue.records, job_id)
    record = queue.get(job_id)
    assert record.status == "running" and record.worker == "other-host:42"  # left to the new owner
    assert not ModelStore(job_settings.model_store).versions("mnist")


def test_a_worker_shutting_down_puts_its_job_back_without_an_attempt(queue, job_settings):
    job_id = _submit(queue, epochs=400, hidden=(64,))
    stopping, requeued = threading.Event(), []
    worker = _training_in_a_thread(queue, job_settings, job_id, stopping=stopping, requeue=requeued.append)
    stopping.set()
    worker.join(timeout=20)
    record = queue.get(job_id)
    assert record.status == "queued" and record.attempts == 0 and record.worker is None
    assert record.events[0].event == "interrupted" and requeued == [job_id]
    assert not ModelStore(job_settings.model_store).versions("mnist")
    run_job(job_settings, queue.records, job_id)  # the next delivery runs it to the end
    assert queue.get(job_id).status == "succeeded" and queue.get(job_id).attempts == 1


def test_a_record_the_store_loses_mid_run_is_put_back_by_its_worker(queue, job_settings):
    import sqlite3

    job_id = _submit(queue, epochs=30, hidden=(32,))
    worker = _training_in_a_thread(queue, job_settings, job_id)
    with sqlite3.connect(job_settings.state_dir / "jobs.sqlite3") as db:
        db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
    worker.join(timeout=60)
    record = queue.get(job_id)
    assert record.status == "succeeded" and len(record.history) == 30
    assert [e.event for e in record.events] == ["restored"]


def test_a_diverging_job_fails_with_the_epoch_and_saves_nothing(queue, job_settings):
    body = {"optimizer": "sgd", "learning_rate": 10.0, "lr_schedule": "constant", "make_default": True}
    body["batch_size"] = 16  # enough steps in an epoch on 500 digits for the loss to blow up
    job_id = _submit(queue, hidden=(512, 256), **body)
    run_job(job_settings, queue.records, job_id)
    record = queue.get(job_id)
    assert record.status == "failed" and "training diverged at epoch 1" in record.error
    assert not ModelStore(job_settings.model_store).versions("mnist")


def test_progress_missed_during_an_outage_lands_with_the_result(queue, job_settings, monkeypatch):
    import service.training as training
    from service.errors import QueueUnavailable

    job_id = _submit(queue, epochs=5)
    records, away = queue.records, threading.Event()
    real_update, real_train = records.update, training.train

    def update(job, change):
        if away.is_set():
            raise QueueUnavailable("job records unavailable: connection refused")
        return real_update(job, change)

    def train_while_the_store_is_away(*args, **kwargs):
        away.set()  # from the first batch to the end of training no write reaches the store
        try:
            return real_train(*args, **kwargs)
        finally:
            away.clear()

    monkeypatch.setattr(records, "update", update)
    monkeypatch.setattr(training, "train", train_while_the_store_is_away)
    run_job(job_settings, records, job_id)
    record = queue.get(job_id)
    assert record.status == "succeeded" and record.attempts == 1
    assert [h["epoch"] for h in record.history] == [1, 2, 3, 4, 5]
    assert record.progress.percent == 100.0


def test_worker_ids_name_the_process_and_tell_apart_two_with_the_same_name_and_pid():
    import socket
    import subprocess
    import sys

    from service.jobs.runner import worker_id

    host, pid, token = worker_id().split(":")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid()) and worker_id() == worker_id()
    # Containers sharing the host's network have its name, and each may run the worker as pid 1:
    # the token differs between processes all the same.
    code = "from service.jobs.runner import worker_id; print(worker_id())"
    run = [sys.executable, "-c", code]
    others = [subprocess.run(run, capture_output=True, text=True, check=True).stdout for _ in "ab"]
    assert len({token, *(other.strip().split(":")[2] for other in others)}) == 3
