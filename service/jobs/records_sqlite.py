"""Job records in SQLite, beside the embedded queue: one machine, any number of processes."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service import sqlite
from service.errors import JobNotFound, QueueUnavailable, StorageFull, is_out_of_storage
from service.jobs.records import Change, JobRecords, decoded, encoded, queue_full
from service.jobs.schemas import JobRecord


class SqliteJobRecords(JobRecords):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created REAL NOT NULL, "
                "status TEXT NOT NULL, data TEXT NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created)")
            # One machine, one clock: "alive until" in this machine's time.time().
            db.execute("CREATE TABLE IF NOT EXISTS workers (id TEXT PRIMARY KEY, until REAL NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite.connect(self.path, timeout=30)
        return db

    def _transaction(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        return sqlite.transaction(self._connect(), work, _sqlite_error, sqlite3.OperationalError)

    def create(self, record: JobRecord, *, max_queued: int | None = None) -> None:
        def work(db: sqlite3.Connection) -> None:
            if max_queued is not None:
                queued = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()[0]
                if queued >= max_queued:
                    raise queue_full(max_queued)
            db.execute(
                "INSERT INTO jobs (id, created, status, data) VALUES (?, ?, ?, ?)",
                (record.id, time.time(), record.status, encoded(record)),
            )

        self._transaction(work)

    def restore(self, record: JobRecord) -> bool:
        cursor = self._connect().execute(
            "INSERT OR IGNORE INTO jobs (id, created, status, data) VALUES (?, ?, ?, ?)",
            (record.id, time.time(), record.status, encoded(record)),
        )
        return cursor.rowcount == 1

    def get(self, job_id: str) -> JobRecord:
        row = self._connect().execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"no job {job_id!r}")
        return decoded(row[0])

    def update(self, job_id: str, change: Change) -> JobRecord:
        def work(db: sqlite3.Connection) -> JobRecord:
            row = db.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(f"no job {job_id!r}")
            record = decoded(row[0])
            change(record)
            db.execute(
                "UPDATE jobs SET status = ?, data = ? WHERE id = ?",
                (record.status, encoded(record), job_id),
            )
            return record

        return self._transaction(work)

    def page(self, limit: int, offset: int) -> tuple[list[JobRecord], int]:
        db = self._connect()
        rows = db.execute(
            "SELECT data FROM jobs ORDER BY created DESC LIMIT ? OFFSET ?", (limit, offset)
        ).fetchall()
        total = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        return [decoded(r[0]) for r in rows], total

    def active(self) -> list[JobRecord]:
        rows = (
            self._connect().execute("SELECT data FROM jobs WHERE status IN ('queued', 'running')").fetchall()
        )
        return [decoded(r[0]) for r in rows]

    def worker_alive(self, worker: str, ttl: float) -> None:
        self._transaction(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO workers (id, until) VALUES (?, ?)", (worker, time.time() + ttl)
            )
        )

    def worker_gone(self, worker: str) -> None:
        self._transaction(lambda db: db.execute("DELETE FROM workers WHERE id = ?", (worker,)))

    def workers_alive(self) -> list[str]:
        def run(db: sqlite3.Connection) -> list[str]:
            db.execute("DELETE FROM workers WHERE until <= ?", (time.time(),))
            return [row[0] for row in db.execute("SELECT id FROM workers ORDER BY id")]

        return self._transaction(run)


def _sqlite_error(exc: sqlite3.OperationalError) -> Exception:
    if is_out_of_storage(exc):
        return StorageFull(f"the job records cannot be written ({exc}): free space in BACKPROP_STATE_DIR")
    return QueueUnavailable(f"job records unavailable: {exc}")
