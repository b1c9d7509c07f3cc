"""What every request leaves behind, by one rule for the app's hooks and the fast lane: its id (the
client's ``X-Request-ID`` when it is sane), its count and time by route in the metrics, and one
access log line."""

from __future__ import annotations

import logging
import re
import time
import uuid

from service.api.metrics import Metrics
from service.tracing import TRACE_ID_KEY

log = logging.getLogger("service.access")

REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"  # a client's X-Request-ID is kept only when sane
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


def sane_request_id(given: str | None) -> str:
    """``given`` when it is a sane request id, else a new one."""
    return given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex


def request_id(environ: dict) -> str:
    """The request's id, written back as its X-Request-ID header: whatever reads the header later
    (a kept input, ``service.feedback``) gets the id the answer and the log carry."""
    given = environ.get("HTTP_X_REQUEST_ID")
    chosen = environ["HTTP_X_REQUEST_ID"] = sane_request_id(given)
    return chosen


def content_encoding(environ: dict) -> str | None:
    """The body's Content-Encoding, when it is not the identity (which is all this API reads)."""
    encoding = environ.get("HTTP_CONTENT_ENCODING", "identity").strip().lower()
    return None if encoding in ("", "identity") else encoding


def record(
    metrics: Metrics,
    request: str,
    method: str,
    route: str,
    path: str,
    status: int,
    started: float,
    environ: dict,
) -> None:
    """Count and time request ``request`` by ``route`` (its rule, not its path: bounded labels), and
    write its access log line, with its trace id when it is traced."""
    elapsed = time.perf_counter() - started
    metrics.observe(route, method, status, elapsed)
    trace_id = environ.get(TRACE_ID_KEY)
    traced = f" trace={trace_id}" if trace_id else ""
    log.info('%s "%s %s" %s %.1fms%s', request, method, path, status, elapsed * 1000, traced)
