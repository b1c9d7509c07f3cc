"""Job records: what every gunicorn worker and training worker sees of a job.

Huey moves job ids from the API to a worker; the record of each job (status, progress, history,
result, error, heartbeats) lives here, in SQLite beside the embedded queue or in Redis beside the
shared one. Both backends offer the same small interface, whose one writing primitive,
``update(job_id, change)``, applies ``change`` to the current record atomically: status
transitions (queued -> running happens once, whoever asks twice) are safe across processes and
machines.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.errors import JobNotFound, QueueUnavailable

Record = dict[str, Any]
Change = Callable[[Record], None]

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_record(job_id: str, request: dict[str, Any]) -> Record:
    return {
        "id": job_id,
        "status": "queued",
        "request": request,
        "created_at": now_iso(),
        "started_at": None,
        "finished_at": None,
        "progress": {
            "epoch": 0,
            "epochs": request.get("epochs"),
            "step": 0,
            "steps_per_epoch": None,
            "percent": 0.0,
        },
        "history": [],
        "result": None,
        "error": None,
        "cancel_requested": False,
        "attempts": 0,
        "lost_attempts": [],
        "worker": None,
        "heartbeat_ts": None,
    }


class JobRecords:
    """Interface; see SqliteJobRecords and RedisJobRecords."""

    def create(self, record: Record) -> None:
        raise NotImplementedError

    def get(self, job_id: str) -> Record:
        raise NotImplementedError

    def update(self, job_id: str, change: Change) -> Record:
        """Apply ``change`` (which mutates the record in place, or raises to abort) atomically."""
        raise NotImplementedError

    def page(self, limit: int, offset: int) -> tuple[list[Record], int]:
        """Newest first: ``limit`` records after skipping ``offset``, and the total count."""
        raise NotImplementedError

    def running(self) -> list[Record]:
        raise NotImplementedError


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

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) where they matter.
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def create(self, record: Record) -> None:
        self._connect().execute(
            "INSERT INTO jobs (id, created, status, data) VALUES (?, ?, ?, ?)",
            (record["id"], time.time(), record["status"], json.dumps(record)),
        )

    def get(self, job_id: str) -> Record:
        row = self._connect().execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"no job {job_id!r}")
        return json.loads(row[0])

    def update(self, job_id: str, change: Change) -> Record:
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(f"no job {job_id!r}")
            record = json.loads(row[0])
            change(record)
            db.execute(
                "UPDATE jobs SET status = ?, data = ? WHERE id = ?",
                (record["status"], json.dumps(record), job_id),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return record

    def page(self, limit: int, offset: int) -> tuple[list[Record], int]:
        db = self._connect()
        rows = db.execute(
            "SELECT data FROM jobs ORDER BY created DESC LIMIT ? OFFSET ?", (limit, offset)
        ).fetchall()
        total = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        return [json.loads(r[0]) for r in rows], total

    def running(self) -> list[Record]:
        rows = self._connect().execute("SELECT data FROM jobs WHERE status = 'running'").fetchall()
        return [json.loads(r[0]) for r in rows]


class RedisJobRecords(JobRecords):
    """One JSON string per job, plus a sorted set of ids by creation time."""

    def __init__(self, url: str, prefix: str = "backprop") -> None:
        import redis

        self._redis_errors = (redis.RedisError,)
        self.client = redis.Redis.from_url(url)
        self.prefix = prefix
        self.index = f"{prefix}:jobs"
        self.running_set = f"{prefix}:running"

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def _call(self, fn):
        try:
            return fn()
        except self._redis_errors as exc:
            raise QueueUnavailable(f"job records unavailable: {exc}") from exc

    def create(self, record: Record) -> None:
        def run():
            with self.client.pipeline() as pipe:
                pipe.set(self._key(record["id"]), json.dumps(record))
                pipe.zadd(self.index, {record["id"]: time.time()})
                pipe.execute()

        self._call(run)

    def get(self, job_id: str) -> Record:
        data = self._call(lambda: self.client.get(self._key(job_id)))
        if data is None:
            raise JobNotFound(f"no job {job_id!r}")
        return json.loads(data)

    def update(self, job_id: str, change: Change) -> Record:
        import redis

        key = self._key(job_id)

        def run():
            with self.client.pipeline() as pipe:
                while True:
                    try:
                        pipe.watch(key)  # optimistic: retried if anyone writes the record meanwhile
                        data = pipe.get(key)
                        if data is None:
                            raise JobNotFound(f"no job {job_id!r}")
                        record = json.loads(data)
                        change(record)
                        pipe.multi()
                        pipe.set(key, json.dumps(record))
                        if record["status"] == "running":
                            pipe.sadd(self.running_set, job_id)
                        else:
                            pipe.srem(self.running_set, job_id)
                        pipe.execute()
                        return record
                    except redis.WatchError:
                        continue

        return self._call(run)

    def page(self, limit: int, offset: int) -> tuple[list[Record], int]:
        def run():
            ids = self.client.zrevrange(self.index, offset, offset + limit - 1)
            total = self.client.zcard(self.index)
            values = self.client.mget([self._key(i.decode()) for i in ids]) if ids else []
            return [json.loads(v) for v in values if v is not None], total

        return self._call(run)

    def running(self) -> list[Record]:
        def run():
            ids = self.client.smembers(self.running_set)
            values = self.client.mget([self._key(i.decode()) for i in ids]) if ids else []
            return [r for r in (json.loads(v) for v in values if v is not None) if r["status"] == "running"]

        return self._call(run)
