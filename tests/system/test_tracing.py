"""Tracing through a real ``backprop serve``, exporting OTLP over HTTP to a receiver this test runs
itself (decoding what it gets with ``opentelemetry-proto``): a client's ``traceparent`` is
continued by a gunicorn worker, whose spans carry the model and version that answered; the answer
and the access log name the trace; a collector that cannot be reached costs no request."""

from __future__ import annotations

import re
import time

import pytest
import requests

from tests.conftest import free_port
from tests.system.processes import AUTH, Service
from tests.system.procfs import children

pytest.importorskip("opentelemetry.proto")
from tests.system.otlp import PARENT, TRACE_ID, Receiver, wait_for_spans


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
        spans = {span["name"]: span for span in wait_for_spans(receiver, TRACE_ID, 3)}
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
