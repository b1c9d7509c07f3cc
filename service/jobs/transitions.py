"""Every change of a job's state, in one place.

    queued --claim--> running --finish--> succeeded | failed | cancelled
    queued --cancel--> cancelled          running --cancel--> (cancel_requested; stops at a batch)
    running --release--> queued           a worker shutting down: no attempt used
    running --lose--> queued | failed     its worker went silent: an attempt used
    queued --requeued--> queued           the queue had lost its message
    (any) --restored--> (same)            the job store had lost the record

Each is a ``Change`` for ``JobRecords.update``, which applies it atomically. A change that finds
the job in another state than it expects raises ``NotInState`` and writes nothing: two workers, or
a worker and a reaper, racing for one job leave it in exactly one of their outcomes.
"""

from __future__ import annotations

import time

from service.errors import Conflict
from service.jobs.records import Change, Record, add_event, now_iso
from service.jobs.schemas import FINISHED, JobStatus


class NotInState(Exception):
    """The job is not in the state the change expects (it moved on since it was read)."""

    def __init__(self, record: Record) -> None:
        super().__init__(record["status"])


def _expect(record: Record, status: JobStatus, worker: str | None = None) -> None:
    if record["status"] != status or (worker is not None and record["worker"] != worker):
        raise NotInState(record)


def claim(worker: str) -> Change:
    """queued -> running on ``worker``, once: another delivery of the same job finds it running."""

    def change(record: Record) -> None:
        _expect(record, "queued")
        record.update(status="running", started_at=now_iso(), worker=worker, heartbeat_ts=time.time())
        record["attempts"] += 1

    return change


def still_running_on(worker: str) -> Change:
    """Nothing, if ``worker`` still runs the job (a reaper may have given it to another run)."""
    return lambda record: _expect(record, "running", worker)


def beat(record: Record) -> None:
    """The running job's worker is alive."""
    if record["status"] == "running":
        record["heartbeat_ts"] = time.time()


def finish(status: JobStatus, **fields) -> Change:
    """-> a final ``status``, with the result or the error in ``fields``."""

    def change(record: Record) -> None:
        record.update(status=status, finished_at=now_iso(), heartbeat_ts=None, **fields)

    return change


def cancel(record: Record) -> None:
    """A queued job never starts; a running one stops at its next batch; a finished one: Conflict."""
    if record["status"] == "queued":
        record.update(status="cancelled", finished_at=now_iso())
    elif record["status"] == "running":
        record["cancel_requested"] = True
    elif record["status"] in FINISHED:
        raise Conflict(f"job {record['id']} already {record['status']}")


def release(worker: str, reason: str) -> Change:
    """running -> queued, as if this run had never started (it uses no attempt); cancelled instead
    if a cancel had been asked for."""

    def change(record: Record) -> None:
        _expect(record, "running", worker)
        if record["cancel_requested"]:
            finish("cancelled")(record)
            return
        add_event(record, "interrupted", f"{reason}; back on the queue without using an attempt")
        record.update(
            status="queued",
            worker=None,
            started_at=None,
            heartbeat_ts=None,
            attempts=record["attempts"] - 1,
            history=[],
            progress={**record["progress"], "epoch": 0, "step": 0, "percent": 0.0},
        )

    return change


def lose(heartbeat: float, reason: str, *, retry: bool) -> Change:
    """running -> queued (``retry``) or failed: its worker went silent after ``heartbeat``."""

    def change(record: Record) -> None:
        if record["status"] != "running" or record["heartbeat_ts"] != heartbeat:
            raise NotInState(record)
        record["lost_attempts"].append({"worker": record["worker"], "at": now_iso(), "reason": reason})
        record.update(heartbeat_ts=None, progress={**record["progress"], "percent": 0.0})
        if retry:
            record.update(status="queued", worker=None, history=[])
        else:
            record.update(
                status="failed",
                finished_at=now_iso(),
                error=f"{reason}; gave up after {record['attempts']} attempts",
            )

    return change


def requeued(record: Record) -> None:
    """queued, and its message put back on the queue that had lost it."""
    _expect(record, "queued")
    add_event(record, "requeued", "the queue had lost this job; a worker's reaper put it back")


def restored(by: str) -> Change:
    """Put back, by ``by``, from its copy after the job store lost its data."""
    detail = (
        f"the job store lost its data (restarted without persistence?); {by} restored this record "
        "from what it had seen last"
    )
    return lambda record: add_event(record, "restored", detail)
