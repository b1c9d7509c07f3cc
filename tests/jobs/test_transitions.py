"""Every state change of a job (service.jobs.transitions), on records as they are stored."""

import pytest

from service.errors import Conflict
from service.jobs import transitions
from service.jobs.records import encoded, new_record
from service.jobs.schemas import JobRecord
from tests.jobs import setting


def _record(status="queued", **fields):
    record = new_record("j1", {"epochs": 3})
    setting(status=status, **fields)(record)
    return record


def _valid(record):
    JobRecord.model_validate_json(encoded(record))  # every change leaves a record of the stored shape
    return record


def test_claim_runs_a_queued_job_once():
    record = _record()
    transitions.claim("w1")(record)
    assert _valid(record).status == "running" and record.worker == "w1" and record.attempts == 1
    with pytest.raises(transitions.NotInState):
        transitions.claim("w2")(record)
    assert record.worker == "w1"


def test_release_puts_a_run_back_without_an_attempt_or_cancels_it():
    record = _record()
    transitions.claim("w1")(record)
    with pytest.raises(transitions.NotInState):
        transitions.release("w2", "shutting down")(record)  # not w2's run
    transitions.release("w1", "shutting down")(record)
    assert _valid(record).status == "queued" and record.attempts == 0
    assert record.events[-1].event == "interrupted"
    transitions.claim("w1")(record)
    transitions.cancel(record)
    transitions.release("w1", "shutting down")(record)
    assert _valid(record).status == "cancelled"


def test_a_lost_worker_uses_an_attempt_then_fails_the_job():
    record = _record()
    transitions.claim("w1")(record)
    beat = record.heartbeat_ts
    with pytest.raises(transitions.NotInState):
        transitions.lose(beat + 1, "silent", retry=True)(record)  # it beat again since
    transitions.lose(beat, "silent", retry=True)(record)
    assert _valid(record).status == "queued" and record.lost_attempts[0]["worker"] == "w1"
    transitions.claim("w2")(record)
    transitions.lose(record.heartbeat_ts, "silent", retry=False)(record)
    assert _valid(record).status == "failed" and "gave up after 2 attempts" in record.error


def test_cancel_by_state():
    queued = _record()
    transitions.cancel(queued)
    assert _valid(queued).status == "cancelled"
    running = _record()
    transitions.claim("w1")(running)
    transitions.cancel(running)
    assert running.status == "running" and running.cancel_requested
    with pytest.raises(Conflict, match="already cancelled"):
        transitions.cancel(queued)


def test_finish_requeued_and_restored():
    record = _record()
    transitions.requeued(record)
    transitions.restored("a test")(record)
    assert [e.event for e in _valid(record).events] == ["requeued", "restored"]
    transitions.claim("w1")(record)
    with pytest.raises(transitions.NotInState):
        transitions.requeued(record)
    transitions.still_running_on("w1")(record)
    with pytest.raises(transitions.NotInState):
        transitions.still_running_on("w2")(record)
    transitions.finish("failed", error="boom")(record)
    assert _valid(record).status == "failed" and record.heartbeat_ts is None
