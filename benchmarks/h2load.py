"""One load generator for both protocols: h2load (Debian's nghttp2-client) speaks HTTP/1.1 to the
REST side and HTTP/2 to gRPC. Each of its connections sends the next request as soon as the previous
answer is in (one stream per connection: closed loop), the same prepared body every time; the
per-request times of its log give p50 and p99.

A tool per protocol (wrk for HTTP, ghz for gRPC, which cannot be installed here) would compare the
tools as much as the protocols, and Python clients would measure the clients: grpcio's costs about
0.13 ms more per call than http.client, more than the difference being measured.

h2load sees HTTP statuses only, and a gRPC call's status travels in its trailers: ``run`` counts a
gRPC call as failed from the service's own count of calls by status code (``/metrics``).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests

INFER = "/inference.GRPCInferenceService/ModelInfer"
WARM_UP = "500ms"


@dataclass(frozen=True)
class Call:
    """A request h2load repeats: ``body`` POSTed to ``url`` with ``headers``, over HTTP/2 for gRPC."""

    url: str
    body: bytes
    headers: tuple[str, ...]
    grpc: bool = False


def rest_raw(base: str, images: np.ndarray) -> Call:
    """``POST /predict`` with the images' bytes (uint8, 784 each)."""
    return Call(f"{base}/predict", images.tobytes(), ("Content-Type: application/octet-stream",))


def rest_v2_binary(base: str, images: np.ndarray) -> Call:
    """The protocol's infer over REST with the binary tensor data extension, as tritonclient sends it."""
    tensor = {"name": "pixels", "shape": list(images.shape), "datatype": "UINT8"}
    head = json.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": images.size}}],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    headers = ("Content-Type: application/octet-stream", f"Inference-Header-Content-Length: {len(head)}")
    return Call(f"{base}/v2/models/mnist/infer", head + images.tobytes(), headers)


def grpc_raw(target: str, images: np.ndarray) -> Call:
    """ModelInfer with the images as raw contents, as tritonclient's gRPC client sends them, in
    gRPC's framing (uncompressed, length-prefixed)."""
    from service.grpc import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name="mnist")
    request.inputs.add(name="pixels", datatype="UINT8", shape=list(images.shape))
    request.raw_input_contents.append(images.tobytes())
    message = request.SerializeToString()
    framed = b"\0" + len(message).to_bytes(4, "big") + message
    return Call(f"http://{target}{INFER}", framed, ("content-type: application/grpc", "te: trailers"), True)


def wait_for(target: str, seconds: float = 30.0) -> None:
    """Until something listens at ``target`` ("host:port"): gRPC starts after REST answers."""
    host, port = target.rsplit(":", 1)
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def version() -> str:
    return subprocess.run(["h2load", "--version"], capture_output=True, text=True, check=True).stdout.strip()


def grpc_failures(base: str) -> float:
    """gRPC calls the service has answered with a status other than OK, so far."""
    text = requests.get(f"{base}/metrics", timeout=30).text
    pattern = r'backprop_http_requests_total\{[^}]*method="GRPC",status="(\w+)"\} ([0-9.e+]+)'
    return sum(float(count) for status, count in re.findall(pattern, text) if status != "OK")


def run(call: Call, *, connections: int, seconds: int, workdir: Path, base: str) -> dict:
    """``connections`` callers for ``seconds`` (after a warm-up): requests, errors, p50/p99 and
    throughput. ``base`` is the REST URL whose /metrics counts the gRPC calls."""
    body, log = workdir / "h2load.body", workdir / "h2load.log"
    body.write_bytes(call.body)
    log.unlink(missing_ok=True)
    headers = [part for header in call.headers for part in ("-H", header)]
    command = ["h2load", "-D", str(seconds), "--warm-up-time", WARM_UP]
    command += ["-c", str(connections), "-m", "1", "-d", str(body), "--log-file", str(log), *headers]
    failed_before = grpc_failures(base) if call.grpc else 0.0
    command += [] if call.grpc else ["--h1"]
    done = subprocess.run([*command, call.url], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"h2load failed on {call.url}: {(done.stdout + done.stderr)[-1500:]}")
    out = done.stdout
    rows = np.loadtxt(log, ndmin=2)  # start (µs since the epoch), HTTP status, time to the answer (µs)
    latencies = rows[:, 2] / 1000
    refused = int(re.search(r"(\d+) failed, (\d+) errored", out).group(1))
    failed = (grpc_failures(base) - failed_before) if call.grpc else 0.0
    return {
        "connections": connections,
        "requests": int(len(rows)),
        "errors": int((rows[:, 1] != 200).sum()) + refused + int(failed),
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "requests_per_second": len(rows) / seconds,
    }
