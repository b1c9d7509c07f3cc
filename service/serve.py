"""``backprop serve``: gunicorn and a supervised training worker as one service; ``backprop health``."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import subprocess
import sys
import time

from service.api.security import check_bind
from service.settings import Settings

log = logging.getLogger(__name__)

GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"]
WORKER = [sys.executable, "-m", "service.cli", "worker"]
MAX_BACKOFF_SECONDS = 30.0
HEALTHY_SECONDS = 60.0  # a worker that ran this long had recovered: its next crash starts backoff anew
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when ``backprop serve`` dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such guard, no harm
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start(command: list[str]) -> subprocess.Popen:
    # A session of its own: a terminal's Ctrl-C reaches only us, and we decide what each child gets.
    return subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent)


class RestartingWorker:
    """The training worker: restarted with exponential backoff (1 s, 2 s, ... 30 s) whenever it
    dies, e.g. at the hands of the out-of-memory killer. Its job goes back on the queue through the
    reaper of the worker that replaces it."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.proc: subprocess.Popen | None = _start(command)
        self.started = time.monotonic()
        self.failures = 0
        self.restart_at = 0.0
        self.stopped = False

    def check(self) -> None:
        now = time.monotonic()
        if self.stopped:
            return
        if self.proc is not None:
            if self.proc.poll() is None:
                return
            self.failures = 1 if now - self.started > HEALTHY_SECONDS else self.failures + 1
            delay = min(MAX_BACKOFF_SECONDS, 2.0 ** (self.failures - 1))
            log.warning(
                "training worker %d exited with status %s; restarting it in %.0f s",
                self.proc.pid,
                self.proc.returncode,
                delay,
            )
            self.proc, self.restart_at = None, now + delay
        if now >= self.restart_at:
            self.proc, self.started = _start(self.command), now
            log.warning("training worker restarted as process %d", self.proc.pid)

    def stop(self) -> None:
        """SIGTERM: the worker puts its running job back on the queue and exits; no more restarts."""
        self.stopped = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        return self.proc.wait() if self.proc is not None else 0


def serve(settings: Settings, *, worker: bool = True) -> int:
    """Run gunicorn (and a training worker) until SIGTERM/SIGINT, or until gunicorn dies.

    The training worker is restarted whenever it dies; predictions never depend on it. When
    gunicorn dies on its own, the service cannot go on: the worker is stopped and the exit status is
    non-zero, so a restart-on-failure supervisor (systemd, Docker) restarts everything. A signal
    stops both gracefully, and the exit status is gunicorn's (0).
    """
    check_bind(settings)  # say it here, plainly, before anything starts
    api = _start(GUNICORN)
    trainer = RestartingWorker(WORKER) if worker else None
    stopping: list[int] = []

    def forward(signum, _frame):
        if stopping:
            return  # a second signal would cut gunicorn's graceful shutdown short
        stopping.append(signum)
        if api.poll() is None:
            api.send_signal(signum)
        if trainer is not None:
            trainer.stop()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while api.poll() is None:
        if trainer is not None:
            trainer.check()
        time.sleep(0.2)
    if not stopping:
        log.error("gunicorn exited with status %s; stopping the training worker", api.returncode)
        if trainer is not None:
            trainer.stop()
    if trainer is not None:
        trainer.wait()
    return api.returncode if stopping else (api.returncode or 1)


def readiness(settings: Settings, *, url: str | None = None, timeout: float = 5.0) -> tuple[bool, str]:
    """(ready, what the service said): ready when it answers /readyz with 200."""
    import requests

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    url = url or f"http://{host}:{settings.port}"
    try:
        response = requests.get(f"{url.rstrip('/')}/readyz", timeout=timeout)
    except requests.RequestException as exc:
        return False, f"{url}: {exc}"
    return response.status_code == 200, response.text.strip()
