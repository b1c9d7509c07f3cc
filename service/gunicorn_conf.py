"""gunicorn configuration, from the same ``BACKPROP_*`` settings as everything else.

    gunicorn -c python:service.gunicorn_conf 'service:create_app()'

(``backprop serve`` runs exactly this; the container too.)
"""

from __future__ import annotations

import os
import shutil
import sys

from pydantic import ValidationError

from service.errors import UnsafeConfiguration
from service.logs import formatter
from service.settings import EXPENSIVE_POOL, Settings, check_bind, describe_errors
from service.wire import REQUEST_LINE_MAX

try:
    _settings = Settings()
except ValidationError as exc:
    sys.exit("\n".join(f"backprop: {line}" for line in describe_errors(exc)))
_host = f"[{_settings.host}]" if ":" in _settings.host else _settings.host
bind = [f"{_host}:{_settings.port}"]
workers = _settings.workers
worker_class, threads = _settings.gunicorn_worker
keepalive = 5
# As long as nginx's request-line buffer (service.front): whichever faces clients, the same
# requests pass, and /predict's and /jobs' query strings get room.
limit_request_line = REQUEST_LINE_MAX
timeout = 60
graceful_timeout = 20
wsgi_app = "service:create_app()"
proc_name = "backprop"
# gunicorn >= 25.1 opens a control socket, by default one per user in ~/.gunicorn: one per service
# instance instead, beside its other state (on_starting creates the folder).
control_socket = str(_settings.state_dir / "gunicorn.ctl")

# One BLAS thread per worker: the workers already use every core, and a single-image product
# split over two threads only adds contention. It has to be in the environment before NumPy is
# first imported: OpenBLAS reads it once, when NumPy loads it, and sizes its thread pool then.
# Nothing this file imports loads NumPy (settings, errors), and the workers import the app, and so
# NumPy, only after they fork from this master, with this environment.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Metrics from every worker land in files here and /metrics adds them up. Set before the workers
# fork, so each imports prometheus_client in multiprocess mode.
_metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_settings.state_dir / "prometheus"))

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"chosen": formatter(_settings.log_format)},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "chosen", "stream": "ext://sys.stderr"}
    },
    "root": {"level": "WARNING", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
        "service": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
    },
}


def on_starting(server) -> None:
    # What gunicorn binds (from here, the command line or GUNICORN_CMD_ARGS) is checked here, once:
    # a Unix socket behind nginx (backprop serve checked its own address) needs no check.
    from gunicorn.util import parse_address

    for address in server.cfg.bind:
        if address.startswith("unix:"):
            continue  # a local socket: only this machine's users reach it
        host = str(parse_address(address)[0]) if not address.startswith("fd://") else "fd"
        try:
            check_bind(_settings, host)
        except UnsafeConfiguration as exc:
            sys.exit(f"backprop: {exc.message}")
    # Samples of a previous run are stale. The expensive pool starts second and shares the folder.
    if server.cfg.proc_name != EXPENSIVE_POOL:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
    try:
        os.makedirs(_metrics_dir, exist_ok=True)
    except OSError as exc:
        # A full or read-only state disk must not stop predictions: workers keep metrics in memory.
        server.log.warning("metrics folder %s unavailable (%s)", _metrics_dir, exc)


def when_ready(server) -> None:
    # The app's modules (NumPy, Flask, Pydantic and the schemas built from them: over a second of
    # CPU) are imported once here, after the BLAS setting above, rather than by every worker: a
    # worker forks with them loaded and only builds its app (create_app, tens of ms), so the pool
    # starts sooner and a worker that replaces a killed one answers at once. Only modules: the
    # app itself, with its connections, random generators and metrics files, is each worker's own.
    import service.app  # noqa: F401


def post_fork(server, worker) -> None:
    # Requests gunicorn refuses before the app sees them (a bad request line, headers too large)
    # get its HTML page; gunicorn has no hook for that page, so its writer is replaced here.
    from gunicorn import util

    from service.wire import raw_http_error

    def write_error(sock, status: int, reason: str, message: str) -> None:
        util.write_nonblock(sock, raw_http_error(status, reason, message))

    util.write_error = write_error


def pre_fork(server, worker) -> None:
    # In the master, so that a worker forked to replace the first one becomes the first in turn.
    from service.gunicorn_worker import idle_flag

    if not hasattr(server, "first_idle"):
        server.first_idle = idle_flag()
    worker.first_idle = server.first_idle
    worker.first = not any(getattr(other, "first", False) for other in server.WORKERS.values())
    if worker.first:
        server.first_idle[0] = 0  # a first worker killed while it waited left it set


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker) -> None:
    # The app, NumPy, Pydantic and Flask leave ~90,000 objects that live as long as the worker. A
    # full collection walks all of them (~60 ms here), which a request that triggers it waits for:
    # the tail of /predict's latency. Frozen, collections only walk what requests allocate.
    import gc

    gc.freeze()
