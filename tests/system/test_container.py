"""The production image: built, run, ready, predicting, and stopped cleanly with SIGTERM (the
engine: tests/system/containers.py)."""

import io
import json
import socket
import subprocess
import time
import uuid

import pytest
import requests
from PIL import Image

from tests.conftest import free_port, shipped_files
from tests.system.processes import wait_until

pytestmark = pytest.mark.slow

SIZE_LIMIT_MB = 250


@pytest.fixture
def image(service_image):
    return service_image


def _inspect(engine, what: str, fmt: str) -> str:
    return subprocess.run(
        [*engine, "inspect", "--format", fmt, what], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_image_is_small_non_root_and_self_checking(image, capsys):
    engine, tag = image
    size_mb = int(_inspect(engine, tag, "{{.Size}}")) / 1e6
    with capsys.disabled():
        print(f"\ncontainer image {tag}: {size_mb:.1f} MB")
    assert size_mb < SIZE_LIMIT_MB
    details = json.loads(
        subprocess.run([*engine, "inspect", tag], capture_output=True, text=True, check=True).stdout
    )[0]
    config = details["Config"]
    assert config["User"].startswith("10001")
    assert config["Cmd"] == ["backprop", "serve"]  # nginx before gunicorn, and a training worker
    healthcheck = config.get("Healthcheck") or details.get("Healthcheck")  # docker / podman
    assert healthcheck["Test"] == ["CMD", "backprop", "health"]
    assert "/srv/model_store" in config["Volumes"]
    store = subprocess.run(
        [*engine, "run", "--rm", "--network", "host", tag, "find", "/srv/model_store", "-type", "f"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(store) == [f"/srv/model_store/{path}" for path in shipped_files()]  # the seed alone
    listing = subprocess.run(
        [*engine, "run", "--rm", "--network", "host", tag, "pip", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert listing.returncode != 0  # no pip (nor compilers) in the final image
    torch = subprocess.run(
        [*engine, "run", "--rm", "--network", "host", tag, "python", "-c", "import torch"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert torch.returncode != 0
    # Pillow's AVIF and WebP decoders are left out: a person who tries one is told in one sentence.
    webp = subprocess.run(
        [*engine, "run", "--rm", "--network", "host", tag, "python", "-c", WEBP_THROUGH_THE_CLI],
        capture_output=True,
        text=True,
        check=False,
    )
    assert webp.returncode == 1, webp.stderr
    said = webp.stderr.strip().splitlines()[-1]  # after the engine's own notices, if any
    assert said == "backprop: /tmp/x.webp cannot be read as an image: WEBP support not installed"


WEBP_THROUGH_THE_CLI = """
import base64, subprocess, sys
webp = "UklGRiQAAABXRUJQVlA4IBgAAAAwAQCdASoBAAEAAQAcJaQAA3AA/v89WAAAAA=="  # a 1x1 lossy WebP
open("/tmp/x.webp", "wb").write(base64.b64decode(webp))
sys.exit(subprocess.run(["backprop", "predict", "/tmp/x.webp"]).returncode)
"""


def _grpc_serving(address: str) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.RpcError:
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def test_container_serves_traces_and_stops_cleanly_on_sigterm(image):
    from tests.system.otlp import PARENT, TRACE_ID, Receiver, wait_for_spans  # the dev extra's

    engine, tag = image
    port, grpc_port = free_port(), free_port()
    receiver = Receiver()  # the image has the otel extra: tracing is one variable away
    name = f"backprop-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [
            *engine,
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "host",
            "-e",
            f"BACKPROP_PORT={port}",
            "-e",
            f"BACKPROP_GRPC_PORT={grpc_port}",
            "-e",
            "BACKPROP_API_TOKEN=container-token-0123456789",
            "-e",
            f"OTEL_EXPORTER_OTLP_ENDPOINT={receiver.url}",
            "-e",
            "OTEL_BSP_SCHEDULE_DELAY=100",
            tag,
        ],
        check=True,
        capture_output=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                ready = requests.get(f"{base}/readyz", timeout=10)
                if ready.status_code == 200:
                    break
            except requests.RequestException:  # refused while starting, slow while loading
                pass
            assert time.monotonic() < deadline, subprocess.run(
                [*engine, "logs", name], capture_output=True, text=True
            ).stderr
            time.sleep(0.3)
        assert ready.json()["model"] == {"name": "mnist", "version": 1}
        # The single container trains too: its command runs a training worker beside the API.
        workers = lambda: requests.get(f"{base}/readyz", timeout=5).json()["training_workers"]  # noqa: E731
        wait_until(lambda: workers() == 1, 60, "the container's training worker")
        traceparent = f"00-{TRACE_ID}-{PARENT}-01"
        answer = requests.post(
            f"{base}/predict", json={"pixels": [0] * 784}, headers={"traceparent": traceparent}, timeout=10
        ).json()
        assert answer["model"]["name"] == "mnist" and len(answer["predictions"][0]["probabilities"]) == 10
        forward = [s for s in wait_for_spans(receiver, TRACE_ID, 3) if s["name"] == "forward pass"]
        assert forward and forward[0]["attributes"]["backprop.model"] == "mnist", receiver.spans
        # The pages' templates and assets are in the installed package; Pillow reads pictures
        page = requests.get(f"{base}/", timeout=5)
        assert page.status_code == 200 and "Draw a digit" in page.text
        assert requests.get(f"{base}/assets/dashboard.js", timeout=5).status_code == 200
        # (PNG and JPEG: the image keeps those decoders and leaves out others).
        for kind in ("PNG", "JPEG"):
            picture = io.BytesIO()
            Image.new("L", (40, 40), 255).save(picture, format=kind)
            drawn = requests.post(
                f"{base}/predict",
                data=picture.getvalue(),
                headers={"Content-Type": f"image/{kind.lower()}"},
                timeout=10,
            )
            assert drawn.status_code == 200, drawn.text
        assert requests.get(f"{base}/v2/health/ready", timeout=5).status_code == 200
        # The protocol over gRPC: the image has its packages, and serve runs it (its health service)
        wait_until(lambda: _grpc_serving(f"127.0.0.1:{grpc_port}"), 60, "gRPC in the container")
        # nginx faces clients: half-sent requests do not hold up the others.
        stalled = []
        for _ in range(20):
            stalled.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            stalled[-1].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        healthz = requests.get(f"{base}/healthz", timeout=5)
        assert healthz.status_code == 200 and time.monotonic() - started < 1.0
        assert healthz.headers["Server"] == "nginx"
        for conn in stalled:
            conn.close()
        health = subprocess.run([*engine, "exec", name, "backprop", "health"], capture_output=True, text=True)
        assert health.returncode == 0
        assert requests.put(f"{base}/models/mnist/default", json={"version": 1}, timeout=5).status_code == 401
        subprocess.run([*engine, "stop", "-t", "30", name], check=True, capture_output=True)  # SIGTERM
        assert _inspect(engine, name, "{{.State.ExitCode}}") == "0"
        logs = subprocess.run([*engine, "logs", name], capture_output=True, text=True).stderr
        assert "Handling signal: term" in logs and "Shutting down: Master" in logs
    finally:
        subprocess.run([*engine, "rm", "-f", "-v", name], capture_output=True, check=False)
        receiver.shutdown()


def test_container_refuses_a_public_bind_without_a_token(image):
    engine, tag = image
    result = subprocess.run(
        [*engine, "run", "--rm", "--network", "host", "-e", f"BACKPROP_PORT={free_port()}", tag],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and "BACKPROP_API_TOKEN" in result.stderr
