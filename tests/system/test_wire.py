"""Integration: what ``backprop serve`` answers to requests written byte by byte (chunked bodies,
bodies past the limit, request lines and headers it refuses), with nginx in front and without:
always this API's JSON error shape (``service.wire``), never a server's own page."""

import contextlib
import json
import socket
from urllib.parse import urlsplit

import pytest
import requests

pytestmark = pytest.mark.slow


def _raw(base: str, data: bytes) -> tuple[int, dict]:
    """Send ``data`` as is over a fresh connection; (status, JSON body) of the answer."""
    where = urlsplit(base)
    with socket.create_connection((where.hostname, where.port), timeout=30) as conn:
        # The server may answer and close before it has read everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(data)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


CHUNKED = (
    b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
)


@pytest.fixture(scope="module", params=["nginx", "none"])
def either_front(request, tmp_path_factory):
    """``backprop serve`` with nginx before gunicorn (the default), or gunicorn facing clients; one
    of each for the module's tests, which change nothing."""
    from tests.conftest import copy_shipped_store
    from tests.system.processes import running

    tmp_path = tmp_path_factory.mktemp(f"front-{request.param}")
    store = copy_shipped_store(tmp_path / "store")
    with running(tmp_path, model_store=store, front=request.param, worker=False) as service:
        yield service.url


def test_chunked_bodies_are_bounded_and_parsed_like_any_other(either_front):
    base = either_front
    status, body = _raw(base, CHUNKED + b"310\r\n" + b"\0" * 784 + b"\r\n0\r\n\r\n")
    assert status == 200 and len(body["predictions"]) == 1
    block = b"%x\r\n" % (1 << 20) + b"\0" * (1 << 20) + b"\r\n"
    status, body = _raw(base, CHUNKED + block * 65 + b"0\r\n\r\n")  # 65 MiB, past the 64 MiB limit
    assert status == 413 and body["error"]["code"] == "request_entity_too_large"
    status, body = _raw(base, CHUNKED + b"zz\r\nabc\r\n0\r\n\r\n")
    assert status == 400 and "chunked body" in body["error"]["message"]
    v2 = CHUNKED.replace(b"/predict", b"/v2/models/mnist/infer")
    status, body = _raw(base, v2 + b"zz\r\nabc\r\n0\r\n\r\n")
    assert status == 400 and "chunked body" in body["error"]  # the protocol's shape, from either front
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize(
    "request_bytes,statuses,code",
    [
        (b"GARBAGE\r\n\r\n", {400}, "bad_request"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", {431}, None),
        (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {414}, "uri_too_long"),
        (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", {400, 505}, None),  # gunicorn's 400, nginx's 505
        (CHUNKED.replace(b"chunked", b"gzip") + b"2\r\n{}\r\n0\r\n\r\n", {400, 501}, None),
    ],
    ids=["bad-request-line", "header-too-large", "uri-too-long", "http-version", "transfer-coding"],
)
def test_requests_the_server_refuses_answer_in_the_json_shape(either_front, request_bytes, statuses, code):
    base = either_front
    answer_status, body = _raw(base, request_bytes)
    assert answer_status in statuses and body["error"]["message"]
    assert code is None or body["error"]["code"] == code


def test_oversize_body_is_a_json_413(either_front):
    base = either_front
    response = requests.post(
        f"{base}/predict",
        data=b"\0" * (65 * 1024 * 1024),
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_entity_too_large"
    response = requests.post(f"{base}/v2/models/mnist/infer", data=b"\0" * (65 * 1024 * 1024), timeout=30)
    assert response.status_code == 413 and "BACKPROP_MAX_BODY_MB" in response.json()["error"]  # v2's shape
