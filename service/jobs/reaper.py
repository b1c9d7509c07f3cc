"""Every worker watches over all jobs, not just its own, every couple of seconds.

It acts on three kinds of trouble:

- a running job whose heartbeat this reaper has *watched* stay unchanged for ``stale_seconds``
  (its worker was killed): back on the queue, up to ``job_max_attempts`` runs, then failed. Time
  is measured on this machine's clock from what it saw, so clock skew between machines and a job
  store outage (during which nobody can beat or watch) never count as silence;
- a queued job whose message the queue lacks for ``stale_seconds`` (a requeue that failed, or a
  queue that lost data): put back on the queue;
- a job store that came back empty (a Redis restarted without persistence, seen as a new
  incarnation token): the queued and running records this reaper saw last are restored, and the
  queued ones put back on the queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from service.errors import QueueUnavailable
from service.jobs import transitions
from service.jobs.records import Change, JobRecords
from service.jobs.schemas import JobRecord
from service.settings import Settings

log = logging.getLogger(__name__)


class Reaper:
    def __init__(
        self,
        settings: Settings,
        records: JobRecords,
        *,
        pending: Callable[[], set[str]],
        requeue: Callable[[str], None],
    ) -> None:
        self.settings, self.records, self.pending, self.requeue = settings, records, pending, requeue
        self._heartbeats: dict[str, tuple[Any, float]] = {}  # job -> (heartbeat seen, since when)
        self._absent: dict[str, float] = {}  # queued job missing from the queue -> since when
        self._known: dict[str, JobRecord] = {}  # active records of the last pass
        self._incarnation: str | None = None

    def run_once(self, now: float | None = None) -> list[str]:
        """One pass; the ids of the jobs it acted on. Raises ``QueueUnavailable`` when the store
        cannot be read, after forgetting what it watched: silence it could not see is no silence."""
        now = time.monotonic() if now is None else now
        try:
            acted = self._restore_after_reset()
            active = self.records.active()
            pending = self.pending()
        except QueueUnavailable:
            self._heartbeats.clear()
            self._absent.clear()
            raise
        self._known = {r.id: r for r in active}
        for record in active:
            if record.status == "running":
                acted += self._check_running(record, now)
            else:
                acted += self._check_queued(record, pending, now)
        for watched in (self._heartbeats, self._absent):
            for job_id in [j for j in watched if j not in self._known]:
                del watched[job_id]
        return acted

    def _check_running(self, record: JobRecord, now: float) -> list[str]:
        job_id, beat = record.id, record.heartbeat_ts
        seen = self._heartbeats.get(job_id)
        if seen is None or seen[0] != beat:
            self._heartbeats[job_id] = (beat, now)
            return []
        if now - seen[1] < self.settings.stale_seconds:
            return []
        retry = record.attempts < self.settings.job_max_attempts
        reason = (
            f"its worker stopped reporting in (no heartbeat for "
            f"{self.settings.stale_seconds:g} s); it was probably killed"
        )

        if not self._apply(job_id, transitions.lose(beat, reason, retry=retry)):
            return []
        del self._heartbeats[job_id]
        if retry:
            self.requeue(job_id)
        log.warning("job %s: worker %s lost; %s", job_id, record.worker, "retrying" if retry else "failed")
        return [job_id]

    def _check_queued(self, record: JobRecord, pending: set[str], now: float) -> list[str]:
        job_id = record.id
        if job_id in pending:
            self._absent.pop(job_id, None)
            return []
        since = self._absent.setdefault(job_id, now)
        if now - since < self.settings.stale_seconds:
            return []

        if not self._apply(job_id, transitions.requeued):
            return []
        del self._absent[job_id]
        self.requeue(job_id)
        log.warning("job %s: queued, but missing from the queue; put back", job_id)
        return [job_id]

    def _apply(self, job_id: str, change: Change) -> bool:
        try:
            self.records.update(job_id, change)
        except transitions.NotInState:  # it moved on since this pass read it: leave it alone
            return False
        return True

    def _restore_after_reset(self) -> list[str]:
        token = self.records.incarnation()
        previous, self._incarnation = self._incarnation, token
        if previous is None or token == previous:
            return []
        log.error(
            "the job store lost its data (a new incarnation %s; was %s): restoring the %d active jobs "
            "this worker knew of",
            token,
            previous,
            len(self._known),
        )
        restored = []
        for record in self._known.values():
            copied = record.model_copy(deep=True)
            transitions.restored("a worker's reaper")(copied)
            if self.records.restore(copied):
                restored.append(record.id)
                if copied.status == "queued":
                    self.requeue(record.id)
        return restored
