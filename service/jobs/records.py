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
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.errors import JobNotFound, QueueUnavailable, StorageFull, TooManyJobs, is_out_of_storage
from service.jobs.schemas import ACTIVE, JobProgress, JobRecord

Record = dict[str, Any]
Change = Callable[[Record], None]

RETRY_AFTER_SECONDS = 30


def add_event(record: Record, event: str, detail: str) -> None:
    """Note in the record something that happened to the job besides its normal course."""
    record.setdefault("events", []).append({"at": now_iso(), "event": event, "detail": detail})


def _queue_full(max_queued: int) -> TooManyJobs:
    return TooManyJobs(
        f"the queue already holds {max_queued} waiting jobs (BACKPROP_MAX_QUEUED_JOBS); "
        "try again when some have run",
        retry_after=RETRY_AFTER_SECONDS,
    )


def _encoded(record: Record) -> str:
    """The record as stored, checked against ``JobRecord`` first: a change that breaks the shape
    fails here, before anything is written."""
    JobRecord.model_validate(record)
    return json.dumps(record)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_record(job_id: str, request: dict[str, Any]) -> Record:
    """The record of a job just accepted (``JobRecord``'s shape, as stored)."""
    progress = JobProgress(epochs=request.get("epochs"))
    record = JobRecord(id=job_id, status="queued", request=request, created_at=now_iso(), progress=progress)
    return record.model_dump(mode="json")


class JobRecords:
    """Interface; see SqliteJobRecords and RedisJobRecords."""

    def create(self, record: Record, *, max_queued: int | None = None) -> None:
        """Add a new record; with ``max_queued``, atomically refuse (``TooManyJobs``) when that
        many jobs are already queued."""
        raise NotImplementedError

    def restore(self, record: Record) -> bool:
        """Put back a record the store lost, unless it is there; True when it was put back."""
        raise NotImplementedError

    def get(self, job_id: str) -> Record:
        raise NotImplementedError

    def update(self, job_id: str, change: Change) -> Record:
        """Apply ``change`` (which mutates the record in place, or raises to abort) atomically."""
        raise NotImplementedError

    def page(self, limit: int, offset: int) -> tuple[list[Record], int]:
        """Newest first: ``limit`` records after skipping ``offset``, and the total count."""
        raise NotImplementedError

    def active(self) -> list[Record]:
        """Queued and running records."""
        raise NotImplementedError

    def running(self) -> list[Record]:
        return [r for r in self.active() if r["status"] == "running"]

    def worker_alive(self, worker: str, ttl: float) -> None:
        """Training worker ``worker`` is alive, for ``ttl`` seconds from now."""
        raise NotImplementedError

    def worker_gone(self, worker: str) -> None:
        """Training worker ``worker`` stopped."""
        raise NotImplementedError

    def workers_alive(self) -> list[str]:
        """The training workers that said they were alive, within their ``ttl``."""
        raise NotImplementedError

    def incarnation(self) -> str:
        """A token that changes only when the store lost all its data (a Redis restarted without
        persistence); a store on this machine's disk never does."""
        return "local"

    def persistence_problem(self) -> str | None:
        """Why the store would lose jobs when its server restarts, or None."""
        return None


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
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) where they matter.
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def _transaction(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            result = work(db)
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise _sqlite_error(exc) from exc
            raise
        return result

    def create(self, record: Record, *, max_queued: int | None = None) -> None:
        def work(db: sqlite3.Connection) -> None:
            if max_queued is not None:
                queued = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()[0]
                if queued >= max_queued:
                    raise _queue_full(max_queued)
            db.execute(
                "INSERT INTO jobs (id, created, status, data) VALUES (?, ?, ?, ?)",
                (record["id"], time.time(), record["status"], _encoded(record)),
            )

        self._transaction(work)

    def restore(self, record: Record) -> bool:
        cursor = self._connect().execute(
            "INSERT OR IGNORE INTO jobs (id, created, status, data) VALUES (?, ?, ?, ?)",
            (record["id"], time.time(), record["status"], _encoded(record)),
        )
        return cursor.rowcount == 1

    def get(self, job_id: str) -> Record:
        row = self._connect().execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"no job {job_id!r}")
        return json.loads(row[0])

    def update(self, job_id: str, change: Change) -> Record:
        def work(db: sqlite3.Connection) -> Record:
            row = db.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(f"no job {job_id!r}")
            record = json.loads(row[0])
            change(record)
            db.execute(
                "UPDATE jobs SET status = ?, data = ? WHERE id = ?",
                (record["status"], _encoded(record), job_id),
            )
            return record

        return self._transaction(work)

    def page(self, limit: int, offset: int) -> tuple[list[Record], int]:
        db = self._connect()
        rows = db.execute(
            "SELECT data FROM jobs ORDER BY created DESC LIMIT ? OFFSET ?", (limit, offset)
        ).fetchall()
        total = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        return [json.loads(r[0]) for r in rows], total

    def active(self) -> list[Record]:
        rows = (
            self._connect().execute("SELECT data FROM jobs WHERE status IN ('queued', 'running')").fetchall()
        )
        return [json.loads(r[0]) for r in rows]

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


class RedisJobRecords(JobRecords):
    """One JSON string per job, a sorted set of ids by creation time, a set of the active ids, and
    an incarnation marker that a Redis restarted without persistence loses with everything else."""

    def __init__(self, url: str, prefix: str = "backprop") -> None:
        import redis

        self._redis = redis
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = prefix
        self.index = f"{prefix}:jobs"
        self.active_set = f"{prefix}:active"
        self.marker = f"{prefix}:incarnation"

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def _call(self, fn):
        try:
            return fn()
        except self._redis.RedisError as exc:
            raise QueueUnavailable(f"job records unavailable: {exc}") from exc

    def _write(self, pipe, record: Record) -> None:
        pipe.set(self._key(record["id"]), _encoded(record))
        if record["status"] in ACTIVE:
            pipe.sadd(self.active_set, record["id"])
        else:
            pipe.srem(self.active_set, record["id"])

    def _load_active(self, client) -> list[Record]:
        ids = client.smembers(self.active_set)
        values = client.mget([self._key(i.decode()) for i in ids]) if ids else []
        return [r for r in (json.loads(v) for v in values if v is not None) if r["status"] in ACTIVE]

    def _optimistic(self, watched: str, body: Callable[[Any], Any]) -> Any:
        """Run ``body(pipe)`` under WATCH of ``watched``, again if anyone wrote it meanwhile."""

        def run():
            with self.client.pipeline() as pipe:
                while True:
                    try:
                        pipe.watch(watched)
                        return body(pipe)
                    except self._redis.WatchError:
                        continue

        return self._call(run)

    def create(self, record: Record, *, max_queued: int | None = None) -> None:
        def body(pipe) -> None:
            if max_queued is not None:
                queued = sum(1 for r in self._load_active(pipe) if r["status"] == "queued")
                if queued >= max_queued:
                    raise _queue_full(max_queued)
            pipe.multi()
            self._write(pipe, record)
            pipe.zadd(self.index, {record["id"]: time.time()})
            pipe.execute()

        self._optimistic(self.active_set, body)

    def restore(self, record: Record) -> bool:
        def run() -> bool:
            if not self.client.set(self._key(record["id"]), _encoded(record), nx=True):
                return False
            with self.client.pipeline() as pipe:
                self._write(pipe, record)
                pipe.zadd(self.index, {record["id"]: time.time()}, nx=True)
                pipe.execute()
            return True

        return self._call(run)

    def get(self, job_id: str) -> Record:
        data = self._call(lambda: self.client.get(self._key(job_id)))
        if data is None:
            raise JobNotFound(f"no job {job_id!r}")
        return json.loads(data)

    def update(self, job_id: str, change: Change) -> Record:
        def body(pipe) -> Record:
            data = pipe.get(self._key(job_id))
            if data is None:
                raise JobNotFound(f"no job {job_id!r}")
            record = json.loads(data)
            change(record)
            pipe.multi()
            self._write(pipe, record)
            pipe.execute()
            return record

        return self._optimistic(self._key(job_id), body)

    def page(self, limit: int, offset: int) -> tuple[list[Record], int]:
        def run():
            ids = self.client.zrevrange(self.index, offset, offset + limit - 1)
            total = self.client.zcard(self.index)
            values = self.client.mget([self._key(i.decode()) for i in ids]) if ids else []
            return [json.loads(v) for v in values if v is not None], total

        return self._call(run)

    def active(self) -> list[Record]:
        return self._call(lambda: self._load_active(self.client))

    def _worker_key(self, worker: str) -> str:
        return f"{self.prefix}:worker:{worker}"

    def worker_alive(self, worker: str, ttl: float) -> None:
        # Expiry by Redis's own clock: the machines' clocks never meet.
        self._call(lambda: self.client.set(self._worker_key(worker), now_iso(), px=int(ttl * 1000)))

    def worker_gone(self, worker: str) -> None:
        self._call(lambda: self.client.delete(self._worker_key(worker)))

    def workers_alive(self) -> list[str]:
        prefix = self._worker_key("")
        keys = self._call(lambda: list(self.client.scan_iter(match=f"{prefix}*", count=1000)))
        return sorted(key.decode().removeprefix(prefix) for key in keys)

    def incarnation(self) -> str:
        def run() -> str:
            self.client.set(self.marker, f"{uuid.uuid4().hex} {now_iso()}", nx=True)
            return self.client.get(self.marker).decode()

        return self._call(run)

    def persistence_problem(self) -> str | None:
        try:
            config = self.client.config_get("save") | self.client.config_get("appendonly")
        except self._redis.RedisError:
            return None  # CONFIG is often disabled on managed Redis, which persists anyway
        if not config.get("save") and config.get("appendonly") != "yes":
            return (
                "Redis keeps no persistence (save '' and appendonly no): a restart of it loses every "
                "queued job; run it with --appendonly yes (live workers restore what they knew)"
            )
        return None
