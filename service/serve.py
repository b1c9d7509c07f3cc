"""``backprop serve``: nginx, the gunicorn pools, the gRPC processes and a supervised training worker
as one service."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from service import tracing
from service.errors import CannotServe
from service.files import make_folder
from service.front import choose_front, nginx_command, pool_socket
from service.priority import lower_priority
from service.settings import EXPENSIVE_POOL, Settings, check_bind

log = logging.getLogger(__name__)

GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"]
WORKER = [sys.executable, "-m", "service.cli", "worker"]
GRPC = [sys.executable, "-m", "service.grpc.server"]
MAX_BACKOFF_SECONDS = 30.0
HEALTHY_SECONDS = 60.0  # a worker that ran this long had recovered: its next crash starts backoff anew
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when ``backprop serve`` dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such guard, no harm
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start(command: list[str], *, nice: int = 0, cpu: int | None = None) -> subprocess.Popen:
    # A session of its own: a terminal's Ctrl-C reaches only us, and we decide what each child gets.
    def prepare_child() -> None:
        _die_with_parent()
        lower_priority(nice)
        if cpu is not None:  # inherited by every thread the program starts
            with contextlib.suppress(OSError):  # the core was taken away meanwhile: run anywhere
                os.sched_setaffinity(0, {cpu})

    return subprocess.Popen(command, start_new_session=True, preexec_fn=prepare_child)


class RestartingWorker:
    """A process the service can go on without for a while: the training worker, a gRPC process.
    Restarted with exponential backoff (1 s, 2 s, ... 30 s) whenever it dies, e.g. at the hands of
    the out-of-memory killer. A training worker's job goes back on the queue through the reaper of
    the worker that replaces it."""

    def __init__(self, command: list[str], what: str = "training worker", cpu: int | None = None) -> None:
        self.command, self.what, self.cpu = command, what, cpu
        self.proc: subprocess.Popen | None = _start(command, cpu=cpu)
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
                "%s %d exited with status %s; restarting it in %.0f s",
                self.what,
                self.proc.pid,
                self.proc.returncode,
                delay,
            )
            self.proc, self.restart_at = None, now + delay
        if now >= self.restart_at:
            self.proc, self.started = _start(self.command, cpu=self.cpu), now
            log.warning("%s restarted as process %d", self.what, self.proc.pid)

    def stop(self) -> None:
        """SIGTERM (a training worker puts its running job back on the queue, a gRPC process lets its
        calls finish) and no more restarts."""
        self.stopped = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        return self.proc.wait() if self.proc is not None else 0


def _wait_for_socket(path: Path, api: subprocess.Popen, timeout: float = 30.0) -> None:
    # nginx starts once gunicorn listens: before, clients would get 502s instead of a refused
    # connection (which every client retries).
    deadline = time.monotonic() + timeout
    while not path.exists() and api.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)


@dataclass
class Plan:
    """What ``backprop serve`` runs, decided before anything starts: the nginx executable (None:
    gunicorn faces clients), and the lock that makes it the only instance on its state folder."""

    nginx: str | None
    lock: IO[str]

    @property
    def front(self) -> str:
        return "nginx" if self.nginx else "none"


def _lock_state_folder(settings: Settings) -> IO[str]:
    # Two instances would share the metrics files and gunicorn's control socket: the second would
    # wipe the first's. The lock goes with the process, however it ends.
    try:
        make_folder(settings.state_dir)
        lock = open(settings.state_dir / "serve.lock", "a+")  # noqa: SIM115 (held until exit)
    except OSError as exc:
        raise CannotServe(
            f"the state folder {settings.state_dir} cannot be used ({exc.strerror or exc}); "
            "point BACKPROP_STATE_DIR at a folder this user can write"
        ) from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        raise CannotServe(
            f"another backprop serve (pid {holder}) is running on the state folder {settings.state_dir}; "
            "stop it, or give this one its own BACKPROP_STATE_DIR"
        ) from None
    lock.seek(0)
    lock.truncate()
    try:  # the pid only helps a second instance name the first; a full disk must not stop serving
        os.write(lock.fileno(), f"{os.getpid()}\n".encode())  # unbuffered: nothing left to fail at exit
    except OSError as exc:
        log.warning("cannot write the pid into %s: %s", lock.name, exc)
    return lock


def _check_port(settings: Settings, port: int, variable: str) -> None:
    host = settings.host.strip("[]")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn and nginx bind
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CannotServe(f"port {port} on {settings.host} is in use; set {variable}") from None
            raise CannotServe(f"cannot listen on {settings.host}:{port}: {exc.strerror}") from None


def prepare(settings: Settings) -> Plan:
    """Refuse, before anything starts or is announced, what cannot run or not safely: an open public
    bind, a public bind without nginx, a second instance on the same state folder, a port in use."""
    check_bind(settings)
    tracing.require()
    if settings.grpc_port == settings.port:
        raise CannotServe(
            f"BACKPROP_GRPC_PORT is the HTTP port, {settings.port}; give gRPC another (0 turns it off)"
        )
    nginx = choose_front(settings)
    lock = _lock_state_folder(settings)
    try:
        _check_port(settings, settings.port, "BACKPROP_PORT or --port")
        if settings.grpc_port:
            _check_port(settings, settings.grpc_port, "BACKPROP_GRPC_PORT (0 turns gRPC off)")
    except CannotServe:
        lock.close()
        raise
    return Plan(nginx, lock)


def serve(settings: Settings, plan: Plan, *, worker: bool = True, app: str | None = None) -> int:
    """Run nginx, gunicorn (and a training worker) until SIGTERM/SIGINT, or until one of them dies.

    nginx faces the clients and hands whole requests to gunicorn over a private socket (see
    ``service.front``); without it gunicorn listens itself. The training worker is restarted
    whenever it dies; predictions never depend on it. When nginx or gunicorn dies on its own, the
    service cannot go on: everything stops and the exit status is non-zero, so a restart-on-failure
    supervisor (systemd, Docker) restarts it all. A signal stops everything gracefully, front first
    (requests already inside still get their answers), and the exit status is gunicorn's (0).
    ``app`` serves another WSGI app than the service the same way (benchmarks compare against one).
    """
    gunicorn = [*GUNICORN, app] if app else GUNICORN
    # gunicorn's configuration reads the settings again: it must pick its workers for this front.
    os.environ["BACKPROP_FRONT"] = plan.front
    with tempfile.TemporaryDirectory(prefix="backprop-") as folder:
        runtime = Path(folder)
        if plan.nginx:
            # One pool after the other: the first clears the metrics folder they share as it starts.
            pools = []
            for pool, extra, nice in (
                ("cheap", [], 0),
                ("expensive", _expensive_pool(settings), settings.expensive_nice),
            ):
                pools.append(
                    _start([*gunicorn, "--bind", f"unix:{pool_socket(runtime, pool)}", *extra], nice=nice)
                )
                _wait_for_socket(pool_socket(runtime, pool), pools[-1])
            alive = all(pool.poll() is None for pool in pools)
            front = _start(nginx_command(settings, runtime, plan.nginx)) if alive else None
        else:
            pools, front = [_start(gunicorn)], None
        # After the pools: the first clears the metrics folder the gRPC processes count into too.
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(settings.state_dir / "prometheus"))
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in the gunicorn workers
        # Each gRPC process on a core of its own: grpcio hands every call from the thread that reads
        # it to one that answers, which costs a tenth of a millisecond more across two cores.
        cpus = sorted(os.sched_getaffinity(0))
        restarting = [
            RestartingWorker(GRPC, "gRPC process", cpu=cpus[i % len(cpus)])
            for i in range(settings.workers if settings.grpc_port else 0)
        ]
        if worker:
            restarting.append(RestartingWorker(WORKER))
        return _supervise(pools, front, restarting)


def _expensive_pool(settings: Settings) -> list[str]:
    """gunicorn's options for the pool of explanations and pictures (``service.api.cost``)."""
    return [
        "--workers",
        str(settings.expensive_workers),
        "--name",
        EXPENSIVE_POOL,
        "--control-socket",
        str(settings.state_dir / "gunicorn-expensive.ctl"),
    ]


def _supervise(
    pools: list[subprocess.Popen], front: subprocess.Popen | None, restarting: list[RestartingWorker]
) -> int:
    """Run until a signal, or until nginx or a gunicorn pool dies; the exit status."""
    stopping: list[int] = []

    def forward(signum, _frame):
        if stopping:
            return  # a second signal would cut the graceful shutdown short
        stopping.append(signum)
        if front is not None and front.poll() is None:
            front.send_signal(signal.SIGQUIT)  # nginx: graceful; gunicorn follows once it is done
        for process in restarting:
            process.stop()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    essential = [*pools, *([front] if front is not None else [])]
    pools_signalled = False
    while all(proc.poll() is None for proc in pools) and (stopping or front is None or front.poll() is None):
        if stopping and not pools_signalled and (front is None or front.poll() is not None):
            # Only now: requests nginx had already read still reach a worker.
            for pool in pools:
                pool.send_signal(signal.SIGTERM)
            pools_signalled = True
        for process in restarting:
            process.check()
        time.sleep(0.2)
    status = 0
    if not stopping:
        died = next(proc for proc in essential if proc.poll() is not None)
        status = died.returncode
        what = "nginx" if died is front else "gunicorn"
        log.error("%s exited with status %s; stopping the rest of the service", what, status)
        for proc in essential:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for process in restarting:
            process.stop()
    for proc in essential:
        proc.wait()
    if front is not None:
        # A killed nginx master leaves its workers behind, still listening: they share its group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(front.pid, signal.SIGKILL)
    for process in restarting:
        process.wait()
    return pools[0].returncode if stopping else (status or 1)
