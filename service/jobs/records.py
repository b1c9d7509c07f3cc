"""Job records: what every gunicorn worker and training worker sees of a job.

Huey moves job ids from the API to a worker; the record of each job (status, progress, history,
result, error, heartbeats) lives in SQLite beside the embedded queue (``records_sqlite``) or in
Redis beside the shared one (``records_redis``). Both backends offer the same small interface,
here, whose one writing primitive, ``update(job_id, change)``, applies ``change`` to the current
record atomically: status transitions (queued -> running happens once, whoever asks twice) are
safe across processes and machines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.errors import TooManyJobs
from service.jobs.schemas import JobProgress, JobRecord, now_iso
from service.settings import Settings

Change = Callable[[JobRecord], None]

RETRY_AFTER_SECONDS = 30


def queue_full(max_queued: int) -> TooManyJobs:
    return TooManyJobs(
        f"the queue already holds {max_queued} waiting jobs (BACKPROP_MAX_QUEUED_JOBS); "
        "try again when some have run",
        retry_after=RETRY_AFTER_SECONDS,
    )


def encoded(record: JobRecord) -> str:
    """The record as stored, read back before it is: a change that broke its shape in a way
    assignment cannot see (an item appended to a list) fails here, before anything is written."""
    text = record.model_dump_json()
    JobRecord.model_validate_json(text)
    return text


def decoded(text: str | bytes) -> JobRecord:
    return JobRecord.model_validate_json(text)


def new_record(
    job_id: str, request: dict[str, Any], trace_context: dict[str, str] | None = None
) -> JobRecord:
    """The record of a job just accepted."""
    progress = JobProgress(epochs=request.get("epochs"))
    return JobRecord(
        id=job_id,
        status="queued",
        request=request,
        created_at=now_iso(),
        progress=progress,
        trace_context=trace_context or {},
    )


class JobRecords:
    """Interface; see SqliteJobRecords and RedisJobRecords."""

    def create(self, record: JobRecord, *, max_queued: int | None = None) -> None:
        """Add a new record; with ``max_queued``, atomically refuse (``TooManyJobs``) when that
        many jobs are already queued."""
        raise NotImplementedError

    def restore(self, record: JobRecord) -> bool:
        """Put back a record the store lost, unless it is there; True when it was put back."""
        raise NotImplementedError

    def get(self, job_id: str) -> JobRecord:
        raise NotImplementedError

    def update(self, job_id: str, change: Change) -> JobRecord:
        """Apply ``change`` (which changes the record in place, or raises to abort) atomically."""
        raise NotImplementedError

    def page(self, limit: int, offset: int) -> tuple[list[JobRecord], int]:
        """Newest first: ``limit`` records after skipping ``offset``, and the total count."""
        raise NotImplementedError

    def active(self) -> list[JobRecord]:
        """Queued and running records."""
        raise NotImplementedError

    def running(self) -> list[JobRecord]:
        return [r for r in self.active() if r.status == "running"]

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


def make_records(settings: Settings) -> JobRecords:
    """The job records the settings name: Redis's when BACKPROP_REDIS_URL is set, else SQLite's."""
    if settings.redis_url:
        from service.jobs.records_redis import RedisJobRecords

        return RedisJobRecords(settings.redis_url)
    from service.jobs.records_sqlite import SqliteJobRecords

    return SqliteJobRecords(settings.state_dir / "jobs.sqlite3")
