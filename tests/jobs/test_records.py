import contextlib
import threading

import pytest

from service.errors import JobNotFound
from service.jobs.records import new_record
from service.jobs.records_redis import RedisJobRecords
from service.jobs.records_sqlite import SqliteJobRecords
from tests.jobs import setting


# The Redis backend needs a redis-server: the slow tier's, like every test that starts one.
@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.slow)])
def records(request, tmp_path):
    if request.param == "sqlite":
        return SqliteJobRecords(tmp_path / "jobs.sqlite3")
    return RedisJobRecords(request.getfixturevalue("redis_url"))


def test_create_get_update(records):
    records.create(new_record("a" * 32, {"epochs": 3}))
    assert records.get("a" * 32).status == "queued"
    updated = records.update("a" * 32, setting(status="running"))
    assert updated.status == "running" and records.get("a" * 32).status == "running"
    assert [r.id for r in records.running()] == ["a" * 32]
    with pytest.raises(JobNotFound):
        records.get("b" * 32)
    with pytest.raises(JobNotFound):
        records.update("b" * 32, lambda r: None)


def test_every_write_keeps_the_one_record_shape(records):
    # The record is a JobRecord (service/jobs/schemas.py), the same model the API shows: a change
    # that misspells a status or a field type is refused before it is written.
    from pydantic import ValidationError

    record = new_record("d" * 32, {"epochs": 3})
    assert record.progress.epochs == 3
    records.create(record)
    with pytest.raises(ValidationError):
        records.update("d" * 32, setting(status="done"))
    with pytest.raises(ValidationError):
        records.update("d" * 32, setting(attempts="twice"))
    assert records.get("d" * 32) == record


def test_an_aborted_change_writes_nothing(records):
    records.create(new_record("c" * 32, {}))

    def change(record):
        record.status = "running"
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        records.update("c" * 32, change)
    assert records.get("c" * 32).status == "queued"


def test_pages_newest_first(records):
    for i in range(5):
        records.create(new_record(f"{i:032d}", {}))
    page, total = records.page(2, 1)
    assert total == 5 and [r.id for r in page] == [f"{3:032d}", f"{2:032d}"]


def test_updates_from_many_threads_are_not_lost(records):
    records.create(new_record("d" * 32, {}))

    def bump():
        for _ in range(20):
            records.update("d" * 32, lambda r: setattr(r, "attempts", r.attempts + 1))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert records.get("d" * 32).attempts == 80


def test_the_queue_limit_is_atomic(records):
    from service.errors import TooManyJobs

    def submit(i):
        with contextlib.suppress(TooManyJobs):
            records.create(new_record(f"{i:032x}", {}), max_queued=5)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    active = records.active()
    assert len(active) == 5
    records.update(active[0].id, setting(status="running"))  # running ones do not count
    records.create(new_record("e" * 32, {}), max_queued=5)


def test_restore_puts_back_only_what_is_missing(records):
    record = new_record("f" * 32, {})
    assert records.restore(record) is True
    records.update("f" * 32, setting(status="running"))
    assert records.restore(record) is False and records.get("f" * 32).status == "running"
    assert [r.id for r in records.running()] == ["f" * 32]


def test_a_redis_that_lost_its_data_has_a_new_incarnation(redis_url):
    records = RedisJobRecords(redis_url)
    first = records.incarnation()
    assert records.incarnation() == first
    assert "appendonly" in records.persistence_problem()  # the test server keeps no persistence
    records.client.flushall()  # what a restart without persistence amounts to
    assert records.incarnation() != first


def test_workers_are_alive_for_their_ttl_and_gone_when_they_say_so(records):
    import time

    assert records.workers_alive() == []
    records.worker_alive("host-a:1", ttl=30)
    records.worker_alive("host-b:2", ttl=0.2)
    assert records.workers_alive() == ["host-a:1", "host-b:2"]
    time.sleep(0.4)  # host-b stopped saying so: a process killed without a goodbye
    assert records.workers_alive() == ["host-a:1"]
    records.worker_gone("host-a:1")
    assert records.workers_alive() == []
