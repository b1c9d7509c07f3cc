"""``backprop serve``: gunicorn and a training worker as one service; ``backprop health``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from service.api.security import check_bind
from service.settings import Settings


def serve(settings: Settings, *, worker: bool = True) -> int:
    """Run gunicorn (and a training worker) until SIGTERM/SIGINT or until either exits.

    Signals are passed on to both; when one child stops, the other is stopped too, so the service
    never runs half-alive. Returns gunicorn's exit code.
    """
    check_bind(settings)  # say it here, plainly, before anything starts
    commands = [[sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"]]
    if worker:
        commands.append([sys.executable, "-m", "service.cli", "worker"])
    children = [subprocess.Popen(command) for command in commands]

    stopping = []

    def forward(signum, _frame):
        stopping.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while all(child.poll() is None for child in children):
        time.sleep(0.2)
    if not stopping:
        # A child stopped on its own: stop the other. (When we are stopping, each child already
        # has the signal, and a second one would cut short gunicorn's graceful shutdown.)
        for child in children:
            if child.poll() is None:
                child.terminate()
    return [child.wait() for child in children][0]


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
