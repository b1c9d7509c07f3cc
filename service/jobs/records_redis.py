"""Job records in Redis, beside the shared queue: any number of machines."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from service.errors import JobNotFound, QueueUnavailable
from service.jobs.records import Change, JobRecords, decoded, encoded, queue_full
from service.jobs.schemas import ACTIVE, JobRecord, now_iso


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

    def _write(self, pipe, record: JobRecord) -> None:
        pipe.set(self._key(record.id), encoded(record))
        if record.status in ACTIVE:
            pipe.sadd(self.active_set, record.id)
        else:
            pipe.srem(self.active_set, record.id)

    def _load_active(self, client) -> list[JobRecord]:
        ids = client.smembers(self.active_set)
        values = client.mget([self._key(i.decode()) for i in ids]) if ids else []
        return [r for r in (decoded(v) for v in values if v is not None) if r.status in ACTIVE]

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

    def create(self, record: JobRecord, *, max_queued: int | None = None) -> None:
        def body(pipe) -> None:
            if max_queued is not None:
                queued = sum(1 for r in self._load_active(pipe) if r.status == "queued")
                if queued >= max_queued:
                    raise queue_full(max_queued)
            pipe.multi()
            self._write(pipe, record)
            pipe.zadd(self.index, {record.id: time.time()})
            pipe.execute()

        self._optimistic(self.active_set, body)

    def restore(self, record: JobRecord) -> bool:
        def run() -> bool:
            if not self.client.set(self._key(record.id), encoded(record), nx=True):
                return False
            with self.client.pipeline() as pipe:
                self._write(pipe, record)
                pipe.zadd(self.index, {record.id: time.time()}, nx=True)
                pipe.execute()
            return True

        return self._call(run)

    def get(self, job_id: str) -> JobRecord:
        data = self._call(lambda: self.client.get(self._key(job_id)))
        if data is None:
            raise JobNotFound(f"no job {job_id!r}")
        return decoded(data)

    def update(self, job_id: str, change: Change) -> JobRecord:
        def body(pipe) -> JobRecord:
            data = pipe.get(self._key(job_id))
            if data is None:
                raise JobNotFound(f"no job {job_id!r}")
            record = decoded(data)
            change(record)
            pipe.multi()
            self._write(pipe, record)
            pipe.execute()
            return record

        return self._optimistic(self._key(job_id), body)

    def page(self, limit: int, offset: int) -> tuple[list[JobRecord], int]:
        def run():
            ids = self.client.zrevrange(self.index, offset, offset + limit - 1)
            total = self.client.zcard(self.index)
            values = self.client.mget([self._key(i.decode()) for i in ids]) if ids else []
            return [decoded(v) for v in values if v is not None], total

        return self._call(run)

    def active(self) -> list[JobRecord]:
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
