"""One process of the protocol's gRPC side: ``python -m service.grpc.server``, which ``backprop
serve`` starts BACKPROP_WORKERS times on BACKPROP_GRPC_PORT (grpcio sets SO_REUSEPORT: the kernel
spreads connections over the processes).

Beside ``inference.GRPCInferenceService`` (``service.grpc.servicer``) it serves the standard
``grpc.health.v1.Health`` (SERVING once the default model passes its test prediction, for the
service as a whole, "", and for the inference service by name: Kubernetes' gRPC probes) and server
reflection. Calls of the protocol and health checks are counted in ``/metrics`` like HTTP
requests (``method="GRPC"``, the status code's name). Bounds: messages up to BACKPROP_MAX_BODY_MB
(larger: RESOURCE_EXHAUSTED), ``MAX_RPCS`` calls at once in ``THREADS`` threads (more:
RESOURCE_EXHAUSTED at once), idle connections closed after ``IDLE_SECONDS``. SIGTERM stops taking
calls and lets those running finish (``GRACE_SECONDS``).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import signal
import sys
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from pydantic import ValidationError

from service import logs
from service.api.metrics import Metrics
from service.api.state import ServiceState
from service.app import build_state
from service.errors import BackpropError
from service.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from service.grpc.servicer import SERVICE, InferenceServicer
from service.settings import Settings, check_bind, describe_errors

log = logging.getLogger(__name__)
CHECK = "/grpc.health.v1.Health/Check"
THREADS = 4  # a prediction releases the interpreter only inside its matrix products: more would queue
MAX_RPCS = 64
IDLE_SECONDS = 300
GRACE_SECONDS = 20
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters, from glibc's malloc.h


class CountedHealth(health.HealthServicer):
    """``grpc.health.v1.Health`` whose Check calls are counted like the protocol's (Watch is a
    stream, not a request)."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics

    def Check(self, request, context):
        started = time.perf_counter()
        try:
            return super().Check(request, context)
        finally:
            code = context.code() or grpc.StatusCode.OK
            self.metrics.observe(CHECK, "GRPC", code.name, time.perf_counter() - started)


def _reuse_freed_memory() -> None:
    """Large arrays (a batch's pixels and activations) from memory this process already has: glibc
    maps each one afresh by default and its page faults cost a batch of 1,000 images a tenth of its
    time here, in every thread's arena. A gunicorn worker's one thread escapes that by glibc's own
    adjustment; the pool's threads do not."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: its own allocator's ways
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 128 << 20)


def _keep_health(state: ServiceState, servicer: CountedHealth, stop: threading.Event) -> None:
    """SERVING while the default model passes its test prediction, looked at every refresh."""
    while not stop.is_set():
        try:
            state.registry.ready(None, None)
            status = health_pb2.HealthCheckResponse.SERVING
        except BackpropError:
            status = health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE):
            servicer.set(name, status)
        stop.wait(max(0.5, state.settings.default_refresh_seconds))


def build_server(settings: Settings, state: ServiceState) -> tuple[grpc.Server, CountedHealth]:
    """The server, its services added and its port bound (not started yet)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 1),
            ("grpc.max_connection_idle_ms", IDLE_SECONDS * 1000),
        ],
        maximum_concurrent_rpcs=MAX_RPCS,
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(state), server)
    checks = CountedHealth(state.metrics)
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    names = (SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    if server.add_insecure_port(f"{host}:{settings.grpc_port}") == 0:
        raise OSError(f"cannot listen on {host}:{settings.grpc_port} for gRPC")
    return server, checks


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        sys.exit("\n".join(f"backprop: {line}" for line in describe_errors(exc)))
    logs.configure(logging.INFO, settings.log_format)
    _reuse_freed_memory()
    try:
        check_bind(settings)
        state = build_state(settings)
        server, checks = build_server(settings, state)
    except (BackpropError, OSError) as exc:
        sys.exit(f"backprop: {getattr(exc, 'message', exc)}")
    with contextlib.suppress(BackpropError):  # the default model loaded before the first call
        state.registry.get(None, None)
    gc.freeze()  # as in the gunicorn workers: full collections no longer walk what the server holds
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    threading.Thread(target=_keep_health, args=(state, checks, stop), name="health", daemon=True).start()
    log.info("gRPC (Open Inference Protocol) on %s:%d", settings.host, settings.grpc_port)
    while not stop.wait(1):
        pass
    checks.enter_graceful_shutdown()
    server.stop(GRACE_SECONDS).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
