import threading

import pytest

from service.errors import JobNotFound
from service.jobs.records import RedisJobRecords, SqliteJobRecords, new_record


@pytest.fixture(params=["sqlite", "redis"])
def records(request, tmp_path):
    if request.param == "sqlite":
        return SqliteJobRecords(tmp_path / "jobs.sqlite3")
    return RedisJobRecords(request.getfixturevalue("redis_url"))


def test_create_get_update(records):
    records.create(new_record("a" * 32, {"epochs": 3}))
    assert records.get("a" * 32)["status"] == "queued"
    updated = records.update("a" * 32, lambda r: r.update(status="running"))
    assert updated["status"] == "running" and records.get("a" * 32)["status"] == "running"
    assert [r["id"] for r in records.running()] == ["a" * 32]
    with pytest.raises(JobNotFound):
        records.get("b" * 32)
    with pytest.raises(JobNotFound):
        records.update("b" * 32, lambda r: None)


def test_an_aborted_change_writes_nothing(records):
    records.create(new_record("c" * 32, {}))

    def change(record):
        record["status"] = "running"
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        records.update("c" * 32, change)
    assert records.get("c" * 32)["status"] == "queued"


def test_pages_newest_first(records):
    for i in range(5):
        records.create(new_record(f"{i:032d}", {}))
    page, total = records.page(2, 1)
    assert total == 5 and [r["id"] for r in page] == [f"{3:032d}", f"{2:032d}"]


def test_updates_from_many_threads_are_not_lost(records):
    records.create(new_record("d" * 32, {}))

    def bump():
        for _ in range(20):
            records.update("d" * 32, lambda r: r.update(attempts=r["attempts"] + 1))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert records.get("d" * 32)["attempts"] == 80
