"""The Open Inference Protocol over gRPC, through a real ``backprop serve``, with tritonclient's
gRPC client unmodified (and its own generated stubs for what the client has no call for: typed
contents, the health service): answers equal /predict's, errors are status codes, hostile input
costs no other caller, the processes are supervised.

(The service's generated modules and tritonclient's define the same protobuf messages: this
process imports only tritonclient's.)"""

from __future__ import annotations

import os
import signal
import socket
import time

import grpc
import numpy as np
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.conftest import copy_shipped_store, free_port
from tests.model_files import good_model
from tests.system.processes import AUTH, Service, wait_until
from tests.system.procfs import alive, children

pytestmark = pytest.mark.slow

tritonclient_grpc = pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402 (after the skip)
from tritonclient.utils import InferenceServerException  # noqa: E402

from tests.system.grpc_calls import METADATA, blank, healthy, pixels  # noqa: E402

MAX_BODY_MB = 2


@pytest.fixture(scope="module")
def served(tmp_path_factory, digits_dir):
    """(the service, its gRPC address): one ``backprop serve`` for the module's tests."""
    folder = tmp_path_factory.mktemp("grpc")
    store = copy_shipped_store(folder / "store")
    grpc_port = free_port()
    service = Service(
        folder,
        worker=False,
        model_store=store,
        data_dir=digits_dir,
        grpc_port=grpc_port,
        max_body_mb=MAX_BODY_MB,
    )
    try:
        service.start()
        address = f"127.0.0.1:{grpc_port}"
        wait_until(lambda: healthy(address), 60, "gRPC serving")
        yield service, address
    finally:
        service.close()


@pytest.fixture
def client(served):
    with tritonclient_grpc.InferenceServerClient(served[1]) as triton:
        yield triton


def _rest(url: str, images: np.ndarray) -> list[dict]:
    answer = requests.post(f"{url}/predict", json={"instances": images.tolist()}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"]


def test_health_metadata_and_readiness_as_tritonclient_asks(client, served):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mnist") and client.is_model_ready("mnist", "1")
    with pytest.raises(InferenceServerException) as missing:
        client.get_model_metadata("mnist", "9")
    assert missing.value.status() == "StatusCode.NOT_FOUND"
    server = client.get_server_metadata()
    assert server.name == "backprop-service" and list(server.extensions) == ["model_repository"]
    model = client.get_model_metadata("mnist")
    assert model.name == "mnist" and model.versions == ["1"] and model.inputs[0].name == "pixels"
    assert [(o.name, o.datatype, list(o.shape)) for o in model.outputs] == [
        ("probabilities", "FP32", [-1, 10]),
        ("label", "INT64", [-1]),
    ]
    # grpc.health.v1, as grpc_health_probe and Kubernetes' gRPC probes ask: the service, and by name
    for name in ("", "inference.GRPCInferenceService"):
        assert healthy(served[1], name)
    with grpc.insecure_channel(served[1]) as channel:
        with pytest.raises(grpc.RpcError) as unknown:
            health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="nothing"), timeout=5
            )
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        # server reflection, as grpcurl asks (a database of its own: nothing enters protobuf's pool)
        listed = set(ProtoReflectionDescriptorDatabase(channel).get_services())
        assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= listed


def test_raw_uint8_in_batches_of_1_and_1000_equal_rest_on_the_500_digits(client, served, real_digits):
    images, labels = real_digits
    expected = _rest(served[0].url, images)
    probabilities = np.array([p["probabilities"] for p in expected], dtype=np.float32)
    for row in (0, 1, 499):
        one = client.infer("mnist", [pixels(images[row : row + 1])])
        assert one.as_numpy("label").tolist() == [expected[row]["label"]]
        np.testing.assert_allclose(one.as_numpy("probabilities")[0], probabilities[row], rtol=0, atol=1e-6)
    batch = np.concatenate([images, images])[:1000]
    answer = client.infer("mnist", [pixels(batch)])
    assert answer.as_numpy("label").tolist() == [p["label"] for p in expected] * 2
    np.testing.assert_allclose(
        answer.as_numpy("probabilities"), np.concatenate([probabilities] * 2), atol=1e-6
    )
    assert (answer.as_numpy("label")[:500] == labels).mean() > 0.95
    assert answer.get_response().model_name == "mnist" and answer.get_response().model_version == "1"
    # [N, 28, 28], a named version, a subset of outputs
    square = client.infer(
        "mnist",
        [pixels(images[:5].reshape(5, 28, 28))],
        model_version="1",
        outputs=[tritonclient_grpc.InferRequestedOutput("label")],
    )
    assert square.as_numpy("label").tolist() == [p["label"] for p in expected[:5]]
    assert square.as_numpy("probabilities") is None


def test_fp32_typed_contents_equal_rest(served, real_digits):
    images, _ = real_digits
    expected = _rest(served[0].url, images[:20])
    request = service_pb2.ModelInferRequest(model_name="mnist", id="typed")
    tensor = request.inputs.add(name="pixels", datatype="FP32", shape=[20, 784])
    tensor.contents.fp32_contents.extend(images[:20].astype(np.float32).ravel().tolist())
    with grpc.insecure_channel(served[1]) as channel:
        answer = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert answer.id == "typed" and [o.name for o in answer.outputs] == ["probabilities", "label"]
    labels = np.frombuffer(answer.raw_output_contents[1], dtype="<i8")
    probabilities = np.frombuffer(answer.raw_output_contents[0], dtype="<f4").reshape(20, 10)
    assert labels.tolist() == [p["label"] for p in expected]
    np.testing.assert_allclose(probabilities, [p["probabilities"] for p in expected], atol=1e-6)


@pytest.mark.parametrize(
    ("build", "code", "words"),
    [
        (
            lambda r: r.inputs.add(name="pixels", datatype="UINT8", shape=[2, 784]),
            "INVALID_ARGUMENT",
            "needs 1568",
        ),
        (
            lambda r: r.inputs.add(name="pixels", datatype="UINT8", shape=[1, 100]),
            "INVALID_ARGUMENT",
            "takes 784",
        ),
        (
            lambda r: r.inputs.add(name="pixels", datatype="INT32", shape=[1, 784]),
            "INVALID_ARGUMENT",
            "datatype",
        ),
        (lambda r: r.inputs.add(name="image", datatype="UINT8", shape=[1, 784]), "INVALID_ARGUMENT", "name"),
        (lambda r: r.outputs.add(name="logits"), "INVALID_ARGUMENT", "outputs"),
    ],
)
def test_bad_requests_are_invalid_argument_naming_the_field(served, build, code, words):
    request = service_pb2.ModelInferRequest(model_name="mnist")
    build(request)
    if not request.inputs:
        request.inputs.add(name="pixels", datatype="UINT8", shape=[1, 784])
    request.raw_input_contents.append(bytes(784))  # a shape that lies about these bytes, or the right ones
    with grpc.insecure_channel(served[1]) as channel, pytest.raises(grpc.RpcError) as refused:
        service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert refused.value.code().name == code and words in refused.value.details(), refused.value.details()


def test_an_unknown_model_is_not_found(client):
    with pytest.raises(InferenceServerException) as missing:
        client.infer("nothing", blank())
    assert missing.value.status() == "StatusCode.NOT_FOUND" and "nothing" in missing.value.message()


def test_hostile_messages_leave_every_caller_answered(served, robustness):
    service, address = served
    stub_channel = grpc.insecure_channel(address)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(stub_channel)
    over = service_pb2.ModelInferRequest(model_name="mnist")
    over.inputs.add(name="pixels", datatype="UINT8", shape=[3000, 784])
    over.raw_input_contents.append(bytes(3000 * 784))  # 2.2 MiB, over BACKPROP_MAX_BODY_MB
    with pytest.raises(grpc.RpcError) as refused:
        stub.ModelInfer(over, timeout=30)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    many = service_pb2.ModelInferRequest(model_name="mnist")  # empty tensors: 2 bytes each, within the limit
    many.inputs.extend([service_pb2.ModelInferRequest.InferInputTensor()] * 10**6)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as refused:
        stub.ModelInfer(many, timeout=60)
    assert (
        refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        and "must hold one tensor" in refused.value.details()
    )
    assert time.monotonic() - started < 10
    # 1,000 connections that send nothing, then the preface and nothing
    idle = [
        socket.create_connection(("127.0.0.1", int(address.rsplit(":", 1)[1])), timeout=5)
        for _ in range(1000)
    ]
    robustness.fault("1000 idle gRPC connections")
    try:
        for conn in idle[::2]:
            conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        time.sleep(1)
        assert requests.get(f"{service.url}/healthz", timeout=5).status_code == 200
        assert (
            requests.post(f"{service.url}/predict", json={"pixels": [0] * 784}, timeout=5).status_code == 200
        )
        one = service_pb2.ModelInferRequest(model_name="mnist")
        one.inputs.add(name="pixels", datatype="UINT8", shape=[1, 784])
        one.raw_input_contents.append(bytes(784))
        assert len(stub.ModelInfer(one, timeout=10).raw_output_contents) == 2
    finally:
        for conn in idle:
            conn.close()
        stub_channel.close()


def test_the_repository_rpcs_need_the_token_and_share_the_store_with_rest(served):
    service, address = served
    with tritonclient_grpc.InferenceServerClient(address) as client:
        with pytest.raises(InferenceServerException) as refused:
            client.get_model_repository_index()
        assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
        headers = dict(METADATA)
        client.load_model("uploaded", headers=headers, files={"file:1/model.npz": good_model()})
        assert ("uploaded", "1", "READY") in [
            (m.name, m.version, m.state) for m in client.get_model_repository_index(headers=headers).models
        ]
        assert (
            requests.get(f"{service.url}/models/uploaded/versions/1", timeout=10).json()["source"] == "upload"
        )
        client.unload_model("uploaded", headers=headers)
        with pytest.raises(InferenceServerException) as unloaded:
            client.infer("uploaded", blank())
        assert unloaded.value.status() == "StatusCode.UNAVAILABLE"
        client.load_model("uploaded", headers=headers)
        assert client.infer("uploaded", blank()).as_numpy("label").shape == (1,)
        # the traffic policy REST sets applies to the protocol's unversioned infer over gRPC
        client.load_model("mnist", headers=headers, files={"file:1/model.npz": good_model(seed=3)})
        policy = {"split": {"2": 1}}
        assert requests.put(f"{service.url}/models/mnist/traffic", json=policy, headers=AUTH, timeout=30).ok
        wait_until(
            lambda: client.infer("mnist", blank()).get_response().model_version == "2",
            10,
            "the policy applied over gRPC",
        )
        assert (
            requests.delete(f"{service.url}/models/mnist/traffic", headers=AUTH, timeout=30).status_code
            == 204
        )


def test_grpc_calls_are_counted_like_http_requests(client, served):
    client.infer("mnist", blank())
    text = requests.get(f"{served[0].url}/metrics", timeout=10).text
    assert 'endpoint="/inference.GRPCInferenceService/ModelInfer",method="GRPC",status="OK"' in text
    assert 'method="GRPC",status="NOT_FOUND"' in text
    assert 'endpoint="/grpc.health.v1.Health/Check",method="GRPC",status="OK"' in text


def test_a_killed_grpc_process_is_replaced_and_a_stop_ends_them_all(served, robustness):
    service, address = served
    processes = [pid for pid, command in children(service.proc.pid) if "service.grpc.server" in command]
    assert len(processes) == 2  # BACKPROP_WORKERS of them, on one port
    cpus = sorted(os.sched_getaffinity(0))
    pinned = [os.sched_getaffinity(pid) for pid in processes]  # each on one core, the cores in turn
    assert pinned == [{cpus[0]}, {cpus[1 % len(cpus)]}]
    os.kill(processes[0], signal.SIGKILL)
    robustness.fault("SIGKILL of a gRPC process")

    def replacements() -> list[int]:
        return [p for p, c in children(service.proc.pid) if "service.grpc.server" in c and p not in processes]

    wait_until(lambda: len(replacements()) == 1, 30, "a new gRPC process")
    assert os.sched_getaffinity(replacements()[0]) == pinned[0]  # on the core of the one it replaces
    wait_until(lambda: healthy(address), 30, "gRPC serving again")
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(timeout=60) == 0
    assert not any(alive(pid) for pid in processes[1:])
