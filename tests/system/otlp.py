"""An OTLP/HTTP trace receiver on loopback for the tests that run a traced service (a real
``backprop serve``, the container), decoding what it gets with ``opentelemetry-proto``."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver on loopback: every span it gets, flattened."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                    for scope in resource_spans.scope_spans:
                        for span in scope.spans:
                            receiver.spans.append(
                                {
                                    "name": span.name,
                                    "trace_id": span.trace_id.hex(),
                                    "span_id": span.span_id.hex(),
                                    "events": [
                                        (e.name, {a.key: _value(a.value) for a in e.attributes})
                                        for e in span.events
                                    ],
                                    "parent": span.parent_span_id.hex(),
                                    "attributes": {a.key: _value(a.value) for a in span.attributes},
                                    "resource": resource,
                                }
                            )
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def of_trace(self, trace_id: str) -> list[dict]:
        return [span for span in self.spans if span["trace_id"] == trace_id]


def _value(value):
    found = getattr(value, value.WhichOneof("value"))
    return [_value(item) for item in found.values] if value.HasField("array_value") else found


def wait_for_spans(receiver: Receiver, trace_id: str, count: int, timeout: float = 20) -> list[dict]:
    """The spans of ``trace_id`` once at least ``count`` arrived (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    while len(receiver.of_trace(trace_id)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return receiver.of_trace(trace_id)
