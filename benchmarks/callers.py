"""Closed-loop callers for comparing REST and gRPC with one method: each caller is a process of its
own that sends a prepared request (the same images, encoded once) as soon as the previous answer is
in, for the same time, and times each call. Neither side parses its answers; both check their
status (HTTP 200, gRPC OK). The callers start together, after one warm-up call each.

(A load generator written for one protocol, wrk for HTTP or ghz for gRPC, would compare the tools
as much as the protocols; ghz cannot be installed here anyway.)
"""

from __future__ import annotations

import http.client
import multiprocessing
import multiprocessing.synchronize
import time
from dataclasses import dataclass

import numpy as np

INFER = "/inference.GRPCInferenceService/ModelInfer"


@dataclass(frozen=True)
class Call:
    """What a caller sends: over ``protocol`` ("http" or "grpc") to ``target`` ("host:port")."""

    protocol: str
    target: str
    body: bytes
    path: str = ""
    headers: tuple[tuple[str, str], ...] = ()


def rest_raw(target: str, images: np.ndarray) -> Call:
    """``POST /predict`` with the images' bytes (uint8, 784 each)."""
    return Call("http", target, images.tobytes(), "/predict", (("Content-Type", "application/octet-stream"),))


def rest_v2_binary(target: str, images: np.ndarray) -> Call:
    """The protocol's infer over REST with the binary tensor data extension, as tritonclient sends it."""
    import json

    tensor = {"name": "pixels", "shape": list(images.shape), "datatype": "UINT8"}
    head = json.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": images.size}}],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    headers = (
        ("Content-Type", "application/octet-stream"),
        ("Inference-Header-Content-Length", str(len(head))),
    )
    return Call("http", target, head + images.tobytes(), "/v2/models/mnist/infer", headers)


def grpc_raw(target: str, images: np.ndarray) -> Call:
    """ModelInfer with the images as raw contents, as tritonclient's gRPC client sends them."""
    from service.grpc import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name="mnist")
    request.inputs.add(name="pixels", datatype="UINT8", shape=list(images.shape))
    request.raw_input_contents.append(images.tobytes())
    return Call("grpc", target, request.SerializeToString())


def _send(call: Call):
    """A function that makes the call once and says whether it succeeded."""
    if call.protocol == "grpc":
        import grpc

        channel = grpc.insecure_channel(call.target)
        method = channel.unary_unary(INFER, request_serializer=None, response_deserializer=None)

        def once() -> bool:
            try:
                method(call.body, timeout=30)
            except grpc.RpcError:
                return False
            return True

        return once
    host, port = call.target.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = dict(call.headers)

    def once() -> bool:
        connection.request("POST", call.path, call.body, headers)
        answer = connection.getresponse()
        answer.read()
        return answer.status == 200

    return once


def _caller(call: Call, start: multiprocessing.synchronize.Barrier, seconds: float, results) -> None:
    once = _send(call)
    once()  # warm: connection made, model loaded
    start.wait(timeout=120)
    latencies, errors = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        errors += not once()
        latencies.append(time.perf_counter() - started)
    results.put((latencies, errors))


def run(call: Call, *, callers: int, seconds: float) -> dict:
    """``callers`` processes calling for ``seconds``: requests, errors, p50/p99 and throughput."""
    context = multiprocessing.get_context("spawn")  # gRPC does not survive a fork
    results = context.Queue()
    start = context.Barrier(callers)  # every caller warm before any is timed
    processes = [
        context.Process(target=_caller, args=(call, start, seconds, results)) for _ in range(callers)
    ]
    for process in processes:
        process.start()
    gathered = [results.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    latencies = np.concatenate([np.array(found) for found, _ in gathered]) * 1000
    return {
        "callers": callers,
        "requests": int(latencies.size),
        "errors": int(sum(errors for _, errors in gathered)),
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "requests_per_second": latencies.size / seconds,
    }
