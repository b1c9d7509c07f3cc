"""The Open Inference Protocol (v2) under ``/v2``: health, server and model metadata, readiness and
inference, for KServe, Triton and MLServer clients. The same store, defaults and limits as
``/predict``; errors in the protocol's shape (see ``service.wire``)."""

from __future__ import annotations

from flask import Response, request
from flask_openapi3 import APIBlueprint, Tag

from service import __version__
from service.api.oip import codec
from service.api.oip.schemas import (
    INPUT_NAME,
    InferRequest,
    InferResponse,
    Liveness,
    ModelMetadata,
    Readiness,
    ServerMetadata,
    protocol_error_responses,
)
from service.api.openapi import body_schema
from service.api.routing import After, classify, no_header
from service.api.schemas import ModelPath, VersionPath
from service.api.state import ServiceState, service_state
from service.errors import ModelFileError, NotReady
from service.registry import LoadedModel
from service.traffic.router import Header
from service.wire import PROTOCOL_PREFIX

bp = APIBlueprint(
    "v2",
    __name__,
    url_prefix=PROTOCOL_PREFIX,
    abp_tags=[Tag(name="open inference protocol (v2)", description="KServe / Triton v2 REST protocol")],
)

SERVER_NAME = "backprop-service"
EXTENSIONS = ["binary_tensor_data", "model_repository"]
PLATFORM = "backprop_numpy_mlp"

# Only the JSON form is in the document: what the binary extension accepts (a JSON prefix of the
# length a header gives, then exactly the bytes its tensors declare) is more than a schema can say,
# and a document that allowed any bytes would promise what the server refuses.
_INFER_BODY = {
    "required": True,
    "content": {"application/json": {"schema": body_schema(InferRequest)}},
}
_BINARY_EXTENSION = (
    "The binary tensor data extension is accepted too, as tritonclient sends it: "
    "`Content-Type: application/octet-stream`, the JSON request first, its length in bytes in the "
    "`Inference-Header-Content-Length` header, then each input's bytes (little-endian) as its "
    "`parameters.binary_data_size` says; `binary_data_output` asks for outputs the same way."
)
_META = {"responses": {200: ModelMetadata, **protocol_error_responses(400, 404, 503)}}
_READY = {"responses": {200: Readiness, **protocol_error_responses(400, 404, 503)}}
_INFER = {
    "responses": {200: InferResponse, **protocol_error_responses(400, 404, 413, 503)},
    "openapi_extensions": {"requestBody": _INFER_BODY},
    "description": _BINARY_EXTENSION,
}


@bp.get("", responses={200: ServerMetadata})
def server_metadata():
    """The server's name, version and protocol extensions."""
    return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}


@bp.get("/health/live", responses={200: Liveness})
def live():
    """The process is alive."""
    return {"live": True}


@bp.get("/health/ready", responses={200: Readiness, **protocol_error_responses(503)})
def ready():
    """The default model is loaded and passes its test prediction."""
    _ready(None, None)
    return {"ready": True}


def _ready(name: str | None, version: int | None) -> LoadedModel:
    """The model, loaded and past its test prediction; else 503 (an unknown one stays a 404)."""
    try:
        return service_state().registry.ready(name, version)
    except ModelFileError as exc:
        raise NotReady(f"not ready: {exc.message}") from exc


def _model_metadata(name: str, version: int | None) -> dict:
    state = service_state()
    model = state.registry.get(name, version)
    spec = model.metadata["spec"]
    return {
        "name": model.name,
        "versions": [str(v) for v in state.store.versions(model.name)],
        "platform": PLATFORM,
        "inputs": [{"name": INPUT_NAME, "datatype": "UINT8", "shape": [-1, spec["input_size"]]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, spec["num_classes"]]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ],
    }


def _model_ready(name: str, version: int | None) -> dict:
    return {"name": _ready(name, version).name, "ready": True}


def _infer(name: str, version: int | None) -> Response:
    length = request.headers.get(codec.HEADER_LENGTH)
    body, mimetype, headers, after = infer(
        service_state(), name, version, request.get_data(), length, request.headers.get
    )
    response = Response(body, mimetype=mimetype, headers=headers)
    if after is not None:
        response.call_on_close(after)  # a shadow answers after the client has its answer
    return response


def infer(
    state: ServiceState,
    name: str,
    version: int | None,
    body: bytes,
    header_length: str | None,
    header: Header = no_header,
) -> tuple[bytes, str, list[tuple[str, str]], After]:
    """An infer request's answer: its body, content type, further headers, and what to run after it
    is sent (the fast lane, ``service.api.fast_lane``, answers with it too)."""
    # The model's input size, before the body is read; unversioned, the policy picks the version
    # after (all versions of a model take the same input: a model is one task).
    spec = state.registry.get(name, version).metadata["spec"]
    with state.tracing.decoding(len(body)):
        inference = codec.parse_infer(
            body, header_length, input_size=spec["input_size"], max_batch=state.settings.max_batch
        )
    model, probabilities, after = classify(state, inference.pixels, name, version, header=header)
    state.metrics.count_images(model.name, model.version, len(probabilities))
    answer, json_length = codec.encode_response(
        inference, probabilities, model_name=model.name, model_version=model.version
    )
    if json_length is None:
        return answer, "application/json", [], after
    return answer, "application/octet-stream", [(codec.HEADER_LENGTH, str(json_length))], after


@bp.get("/models/<name>", **_META)
def model_metadata(path: ModelPath):
    """A model's inputs and outputs (its default version's), and its versions."""
    return _model_metadata(path.name, None)


@bp.get("/models/<name>/versions/<int:version>", **_META)
def version_metadata(path: VersionPath):
    """A version's inputs and outputs, and the model's versions."""
    return _model_metadata(path.name, path.version)


@bp.get("/models/<name>/ready", **_READY)
def model_ready(path: ModelPath):
    """The model's default version is loaded and passes its test prediction."""
    return _model_ready(path.name, None)


@bp.get("/models/<name>/versions/<int:version>/ready", **_READY)
def version_ready(path: VersionPath):
    """The version is loaded and passes its test prediction."""
    return _model_ready(path.name, path.version)


@bp.post("/models/<name>/infer", **_INFER)
def model_infer(path: ModelPath):
    """Classify the `pixels` tensor with the model's default version."""
    return _infer(path.name, None)


@bp.post("/models/<name>/versions/<int:version>/infer", **_INFER)
def version_infer(path: VersionPath):
    """Classify the `pixels` tensor with this version."""
    return _infer(path.name, path.version)
