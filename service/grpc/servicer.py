"""``inference.GRPCInferenceService``: the Open Inference Protocol's RPCs over the REST side's
domain code (the registry, ``service.api.routing.classify`` with its traffic policies, the model
repository's upload, load and unload), with its errors as gRPC status codes.

Inference needs no token; the repository's RPCs need ``authorization: Bearer <BACKPROP_API_TOKEN>``
in the call's metadata, as its REST routes need the header. A load that uploads a file is
expensive: at most one runs in a process at a time, another is refused at once (RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable
from functools import wraps

import grpc
from pydantic import ValidationError

from service import __version__, repository
from service.api.oip.repository import upload_options
from service.api.oip.routes import PLATFORM, SERVER_NAME
from service.api.oip.schemas import FILE_PARAMETER, INPUT_NAME
from service.api.routing import classify
from service.api.schemas import ModelPath
from service.api.state import ServiceState
from service.errors import (
    BackpropError,
    InvalidInput,
    ModelFileError,
    ModelTooLarge,
    NotReady,
    Unauthorized,
)
from service.grpc import grpc_predict_v2_pb2 as pb
from service.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from service.grpc import tensors

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name

# An HTTP status of a domain error, as the gRPC code that says the same.
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    507: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def _described(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "request"
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"


def _rpc(method: Callable) -> Callable:
    """Domain errors and invalid requests as the status code and message of the call; every call
    counted in ``/metrics`` like an HTTP request (its path, ``method="GRPC"``, the code's name).
    Counted here: a server interceptor would put grpcio's interceptor pipeline on every call."""
    path = f"/{SERVICE}/{method.__name__}"

    @wraps(method)
    def answering(self, request, context: grpc.ServicerContext):
        started, code = time.perf_counter(), grpc.StatusCode.UNKNOWN
        try:
            answer = method(self, request, context)
            code = grpc.StatusCode.OK
            return answer
        except BackpropError as exc:
            code = CODES.get(exc.status, grpc.StatusCode.INTERNAL)
            context.abort(code, exc.message)
        except ValidationError as exc:
            code = grpc.StatusCode.INVALID_ARGUMENT
            context.abort(code, _described(exc))
        finally:
            self.state.metrics.observe(path, "GRPC", code.name, time.perf_counter() - started)

    return answering


def _version(text: str, field: str) -> int | None:
    """A version given as the protocol's string: empty for the model's choice."""
    if not text:
        return None
    if not re.fullmatch(r"[1-9][0-9]{0,8}", text):
        raise InvalidInput.at(
            [field], f"must be a version number (1, 2, ...) or empty, got {text[:40]!r}", "version"
        )
    return int(text)


def _name(text: str) -> str:
    return ModelPath.model_validate({"name": text}).name


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, state: ServiceState) -> None:
        self.state = state

    def _check_token(self, context: grpc.ServicerContext) -> None:
        token = self.state.settings.api_token
        if token is None:
            return
        given = dict(context.invocation_metadata()).get("authorization", "")
        scheme, _, value = given.partition(" ")
        if not (
            scheme.lower() == "bearer"
            and hmac.compare_digest(value.strip().encode(), token.get_secret_value().encode())
        ):
            raise Unauthorized("this RPC needs the metadata 'authorization: Bearer <BACKPROP_API_TOKEN>'")

    @_rpc
    def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    @_rpc
    def ServerReady(self, request, context):
        try:
            self.state.registry.ready(None, None)
        except (ModelFileError, NotReady):
            return pb.ServerReadyResponse(ready=False)
        return pb.ServerReadyResponse(ready=True)

    @_rpc
    def ModelReady(self, request, context):
        try:
            self.state.registry.ready(_name(request.name), _version(request.version, "version"))
        except ModelFileError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    @_rpc
    def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=__version__, extensions=["model_repository"]
        )

    @_rpc
    def ModelMetadata(self, request, context):
        model = self.state.registry.get(_name(request.name), _version(request.version, "version"))
        spec = model.metadata["spec"]
        answer = pb.ModelMetadataResponse(
            name=model.name,
            versions=[str(v) for v in self.state.store.versions(model.name)],
            platform=PLATFORM,
        )
        answer.inputs.add(name=INPUT_NAME, datatype="UINT8", shape=[-1, spec["input_size"]])
        answer.outputs.add(name="probabilities", datatype="FP32", shape=[-1, spec["num_classes"]])
        answer.outputs.add(name="label", datatype="INT64", shape=[-1])
        return answer

    @_rpc
    def ModelInfer(self, request, context):
        state = self.state
        name, version = _name(request.model_name), _version(request.model_version, "model_version")
        spec = state.registry.get(name, version).metadata["spec"]
        inference = tensors.parse_infer(
            request, input_size=spec["input_size"], max_batch=state.settings.max_batch
        )
        metadata = dict(context.invocation_metadata())
        model, probabilities, after = classify(
            state, inference.pixels, name, version, header=lambda h: metadata.get(h.lower())
        )
        state.metrics.count_images(model.name, model.version, len(probabilities))
        if after is not None:
            context.add_callback(after)  # a shadow answers once the call is over
        return tensors.encode_response(
            inference, probabilities, model_name=model.name, model_version=model.version
        )

    @_rpc
    def RepositoryIndex(self, request, context):
        self._check_token(context)
        entries = repository.index(self.state.store, ready_only=request.ready)
        return pb.RepositoryIndexResponse(
            models=[pb.RepositoryIndexResponse.ModelIndex(**entry) for entry in entries]
        )

    @_rpc
    def RepositoryModelLoad(self, request, context):
        self._check_token(context)
        state, name = self.state, _name(request.model_name)
        given = tensors.parameters(request.parameters)
        files = {key: value for key, value in given.items() if key.startswith("file:")}
        if not files:
            repository.load(state.store, state.registry, name)
            return pb.RepositoryModelLoadResponse()
        if (
            len(files) != 1
            or not re.fullmatch(FILE_PARAMETER, key := next(iter(files)))
            or not isinstance(files[key], bytes)
        ):
            raise InvalidInput.at(
                ["parameters"],
                f"must hold one model file, 'file:N/model.npz' in bytes_param, got {sorted(files)[:4]}",
                "files",
            )
        limit = state.settings.max_model_bytes
        if len(files[key]) > limit:
            raise ModelTooLarge(
                f"{key} is over the {limit:,} bytes a model file may have (BACKPROP_MAX_MODEL_MB)"
            )
        config = given.get("config")
        options = upload_options(config if isinstance(config, str) else None)
        with state.expensive.held("loading a model"):
            repository.upload(state.store, state.registry, name, files[key], options, max_bytes=limit)
            repository.load(state.store, state.registry, name)
        return pb.RepositoryModelLoadResponse()

    @_rpc
    def RepositoryModelUnload(self, request, context):
        self._check_token(context)
        repository.unload(self.state.store, self.state.registry, _name(request.model_name))
        return pb.RepositoryModelUnloadResponse()
