"""OpenTelemetry tracing, configured only by the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``
or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER``,
``OTEL_BSP_*``, ...), exporting OTLP over HTTP with the official SDK (the ``otel`` extra).

Without an endpoint (or with ``OTEL_SDK_DISABLED=true``) nothing of OpenTelemetry is imported and
``Tracing.span`` is a ``nullcontext``: a request costs what it costs untraced. With one, each
process builds its own tracer provider after gunicorn's fork (the exporting thread does not survive
a fork), HTTP requests are traced by OpenTelemetry's maintained WSGI middleware around the whole
app (so the fast lane's requests too), which continues a client's W3C ``traceparent``; the answer
names the trace in a ``traceresponse`` header; spans the service adds go through ``span``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

from service.errors import ExtraMissing

ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
TRACE_ID_KEY = "backprop.trace_id"  # the WSGI environ key the access log reads
DECODING = "decoding the body"


def wanted(environ: dict[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(environ.get(variable, "").strip() for variable in ENDPOINTS)


class Tracing:
    """One process's tracing, or none (``provider`` None)."""

    def __init__(self, provider: Any = None) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("backprop-service") if provider is not None else None

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def span(self, name: str, **attributes: Any):
        """A span of ``name`` under the current one, yielding it (None when tracing is off)."""
        if self.tracer is None:
            return contextlib.nullcontext()
        return self.tracer.start_as_current_span(name, attributes=attributes)

    def decoding(self, body_size: int):
        """The span of reading a request's body (``body_size`` bytes) into pixels."""
        return self.span(DECODING, **{"http.request.body.size": body_size})

    def carrier(self) -> dict[str, str]:
        """The current trace context in W3C form (``traceparent``, ``tracestate``): what a job
        record carries to the worker that runs it. Empty when tracing is off."""
        if self.tracer is None:
            return {}
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        return carrier

    def continued(self, carrier: dict[str, str], name: str, **attributes: Any):
        """A span of ``name`` in the trace ``carrier`` holds (a trace of its own without one)."""
        if self.tracer is None:
            return contextlib.nullcontext()
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        context = TraceContextTextMapPropagator().extract(carrier)
        return self.tracer.start_as_current_span(name, context=context, attributes=attributes)

    def wrap(self, app: Callable) -> Callable:
        """``app`` (WSGI) traced: a server span per request, the trace id in the WSGI environ."""
        from opentelemetry import trace
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

        def remembering(environ: dict, start_response: Callable):
            span = trace.get_current_span()
            context = span.get_span_context()
            if not context.is_valid:
                return app(environ, start_response)
            if "HTTP_X_REQUEST_ID" in environ:  # nginx's, or the client's it forwards: the app logs it
                span.set_attribute("http.request.header.x-request-id", [environ["HTTP_X_REQUEST_ID"]])
            trace_id = environ[TRACE_ID_KEY] = format(context.trace_id, "032x")
            # W3C Trace Context's response header (the WSGI middleware writes none).
            flags = int(context.trace_flags)
            header = ("traceresponse", f"00-{trace_id}-{context.span_id:016x}-{flags:02x}")

            def answering(status: str, headers: list, exc_info=None):
                return start_response(status, [*headers, header], exc_info)

            return app(environ, answering)

        return OpenTelemetryMiddleware(remembering, tracer_provider=self.provider)


def require() -> None:
    """Raise ``ExtraMissing`` if the environment asks for tracing and the SDK is not installed: for
    ``backprop serve`` to say so before anything starts."""
    if not wanted():
        return
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.instrumentation.wsgi
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as exc:
        raise ExtraMissing(
            f"{' or '.join(ENDPOINTS)} asks for tracing, which needs the otel extra: pip install '.[otel]'"
        ) from exc


def start(role: str) -> Tracing:
    """This process's tracing, if the environment asks for it. ``role`` ("api", "worker") becomes
    the resource attribute ``backprop.role``, beside ``process.pid``."""
    if not wanted():
        return Tracing()
    require()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes: dict[str, Any] = {"process.pid": os.getpid(), "backprop.role": role}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = "backprop-service"
    provider = TracerProvider(resource=Resource.create(attributes))  # the sampler: OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return Tracing(provider)
