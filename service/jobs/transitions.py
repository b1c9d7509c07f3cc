"""Every change of a job's state as a ``Change`` for ``JobRecords.update``, which applies it to the
stored record atomically. The changes themselves are ``JobRecord``'s methods (see its docstring for
the states); these name them for the callers that pass them to the store.

A change that finds the job in another state than it expects raises ``NotInState`` and writes
nothing: two workers, or a worker and a reaper, racing for one job leave it in exactly one of their
outcomes.
"""

from __future__ import annotations

from service.jobs.records import Change
from service.jobs.schemas import JobRecord, JobStatus, NotInState

__all__ = [
    "NotInState",
    "beat",
    "cancel",
    "claim",
    "finish",
    "lose",
    "release",
    "requeued",
    "restored",
    "still_running_on",
]

beat: Change = JobRecord.beat
cancel: Change = JobRecord.cancel


def claim(worker: str) -> Change:
    return lambda job: job.claim(worker)


def still_running_on(worker: str) -> Change:
    """Nothing, if ``worker`` still runs the job (a reaper may have given it to another run)."""
    return lambda job: job.expect("running", worker)


def finish(status: JobStatus, **fields) -> Change:
    return lambda job: job.finish(status, **fields)


def release(worker: str, reason: str) -> Change:
    return lambda job: job.release(worker, reason)


def lose(heartbeat: float, reason: str, *, retry: bool) -> Change:
    return lambda job: job.lose(heartbeat, reason, retry=retry)


def requeued(job: JobRecord) -> None:
    job.expect("queued")
    job.add_event("requeued", "the queue had lost this job; a worker's reaper put it back")


def restored(by: str) -> Change:
    """Put back, by ``by``, from its copy after the job store lost its data."""
    detail = (
        f"the job store lost its data (restarted without persistence?); {by} restored this record "
        "from what it had seen last"
    )
    return lambda job: job.add_event("restored", detail)
