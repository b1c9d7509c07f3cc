"""Tracing through a real ``backprop serve``, exporting OTLP over HTTP to a receiver this test runs
itself (decoding what it gets with ``opentelemetry-proto``): a client's ``traceparent`` is
continued by a gunicorn worker, whose spans carry the model and version that answered; the answer
and the access log name the trace; a collector that cannot be reached costs no request."""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.conftest import free_port
from tests.system.processes import AUTH, Service, children

pytest.importorskip("opentelemetry.proto")
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


def _traced(tmp_path, store_dir, endpoint: str, **settings) -> Service:
    service = Service(tmp_path, model_store=store_dir, **{"worker": False, **settings})
    service.env.update(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "bp"}
    )
    return service


def test_a_predict_continues_the_clients_trace_in_a_gunicorn_worker(tmp_path, store_dir):
    receiver = Receiver()
    service = _traced(tmp_path, store_dir, receiver.url).start()
    try:
        answer = requests.post(
            f"{service.url}/predict",
            json={"pixels": [0] * 784},
            headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-01"},
            timeout=10,
        )
        assert answer.status_code == 200
        assert re.fullmatch(f"00-{TRACE_ID}-[0-9a-f]{{16}}-01", answer.headers["traceresponse"])
        deadline = time.monotonic() + 20
        while len(receiver.of_trace(TRACE_ID)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        spans = {span["name"]: span for span in receiver.of_trace(TRACE_ID)}
        decoding = spans.pop("decoding the body")
        forward = spans.pop("forward pass")
        (server,) = spans.values()  # the request's span, from the WSGI middleware
        assert server["parent"] == PARENT and forward["parent"] == decoding["parent"] == server["span_id"]
        assert decoding["attributes"] == {"http.request.body.size": len(answer.request.body)}
        assert forward["attributes"] == {
            "backprop.images": 1,
            "backprop.model": "mnist",
            "backprop.version": 1,
        }
        workers = [pid for pid, _ in children(service.gunicorn_pid())]
        assert server["resource"]["process.pid"] in workers and server["resource"]["service.name"] == "bp"
        # nginx gave the request its id (the client sent none); the span, the answer and the
        # access log line all carry that one.
        request_id = answer.headers["X-Request-ID"]
        assert server["attributes"]["http.request.header.x-request-id"] == [request_id]
        assert f'{request_id} "POST /predict" 200' in service.log() and f"trace={TRACE_ID}" in service.log()

        explained = "5ee5ee5ee5ee5ee5ee5ee5ee5ee5ee5e"
        answer = requests.post(
            f"{service.url}/explain",
            json={"pixels": [0] * 784, "method": "gradient"},
            headers={"traceparent": f"00-{explained}-{PARENT}-01"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 20
        while not any(s["name"] == "explanation" for s in receiver.of_trace(explained)):
            assert time.monotonic() < deadline, receiver.of_trace(explained)
            time.sleep(0.1)
        (explanation,) = [s for s in receiver.of_trace(explained) if s["name"] == "explanation"]
        assert explanation["attributes"] == {
            "backprop.model": "mnist",
            "backprop.version": 1,
            "backprop.method": "gradient",
            "backprop.images": 1,
        }
    finally:
        service.close()
        receiver.shutdown()


def test_a_collector_that_cannot_be_reached_costs_no_request(tmp_path, store_dir):
    service = _traced(tmp_path, store_dir, f"http://127.0.0.1:{free_port()}")
    service.env["OTEL_EXPORTER_OTLP_TIMEOUT"] = "1"  # seconds: what a stop may wait for the exports
    service.start()
    try:
        started = time.monotonic()
        statuses = {
            requests.post(f"{service.url}/predict", json={"pixels": [0] * 784}, timeout=10).status_code
            for _ in range(200)
        }
        assert statuses == {200} and time.monotonic() - started < 20
    finally:
        stopping = time.monotonic()
        service.close()
    assert time.monotonic() - stopping < 10


def test_a_train_request_and_its_job_in_the_worker_are_one_trace(tmp_path, store_dir, tiny_dataset_dir):
    receiver = Receiver()
    service = _traced(tmp_path, store_dir, receiver.url, worker=True, data_dir=tiny_dataset_dir).start()
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    try:
        answer = requests.post(
            f"{service.url}/train",
            json={"model": "traced", "hidden": [8], "epochs": 2},
            headers={**AUTH, "traceparent": f"00-{trace_id}-{PARENT}-01"},
            timeout=10,
        )
        assert answer.status_code == 202
        service.wait_job(answer.json()["id"], ("succeeded",), timeout=120)
        deadline = time.monotonic() + 20
        while not any(s["name"] == "training job" for s in receiver.of_trace(trace_id)):
            assert time.monotonic() < deadline, receiver.of_trace(trace_id)
            time.sleep(0.1)
        spans = receiver.of_trace(trace_id)
        (request,) = [s for s in spans if s["parent"] == PARENT]  # the POST /train, in a gunicorn worker
        (job,) = [s for s in spans if s["name"] == "training job"]
        assert job["parent"] == request["span_id"]  # the gap between them: the wait in the queue
        assert request["resource"]["backprop.role"] == "api" and job["resource"]["backprop.role"] == "worker"
        assert job["attributes"]["backprop.model"] == "traced" and job["attributes"]["backprop.version"] == 1
        assert [name for name, _ in job["events"]] == ["epoch", "epoch"]
        assert {"epoch", "loss"} <= set(job["events"][1][1])
    finally:
        service.close()
        receiver.shutdown()
