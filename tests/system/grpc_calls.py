"""Calls of the Open Inference Protocol over gRPC for the system tests: the health check as probes
make it, and inputs as tritonclient's gRPC client sends them."""

from __future__ import annotations

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient import grpc as tritonclient_grpc

from tests.conftest import TOKEN

METADATA = [("authorization", f"Bearer {TOKEN}")]


def healthy(address: str, service: str = "") -> bool:
    """grpc.health.v1 says ``service`` (all of them: "") is serving at ``address``."""
    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=5
            )
        except grpc.RpcError:
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def pixels(images: np.ndarray, datatype: str = "UINT8", shape=None) -> tritonclient_grpc.InferInput:
    """The ``pixels`` input holding ``images`` (as ``shape``, if given)."""
    tensor = tritonclient_grpc.InferInput("pixels", list(shape or images.shape), datatype)
    tensor.set_data_from_numpy(images)
    return tensor


def blank() -> list[tritonclient_grpc.InferInput]:
    """One blank image: the inputs of an infer call."""
    return [pixels(np.zeros((1, 784), np.uint8))]
