"""The protocol's model repository extension under ``/v2/repository`` (Triton's, which
tritonclient's ``get_model_repository_index``, ``load_model`` and ``unload_model`` call): the index
of every model and version, load (with a ``file:N/model.npz`` parameter it uploads a version through
the same verification as ``POST /models/NAME/versions``; without, it serves an unloaded model
again) and unload. Every route needs the token; an upload costs what ``service.api.transfer``
says, and runs in the expensive pool like it.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from flask import request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ValidationError

from service import repository
from service.api import inputs
from service.api.cost import expensive
from service.api.oip.schemas import (
    FILE_PARAMETER,
    IndexRequest,
    LoadRequest,
    LoadResponse,
    RepositoryIndex,
    UnloadRequest,
    protocol_error_responses,
)
from service.api.openapi import body_schema
from service.api.schemas import ModelPath
from service.api.security import BEARER_SECURITY, require_token
from service.api.state import service_state
from service.errors import ModelTooLarge
from service.repository import UploadOptions
from service.wire import PROTOCOL_PREFIX

bp = APIBlueprint(
    "v2_repository",
    __name__,
    url_prefix=f"{PROTOCOL_PREFIX}/repository",
    abp_tags=[Tag(name="open inference protocol (v2)", description="KServe / Triton v2 REST protocol")],
)


def _body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of ``model``: optional, as tritonclient sends the index's empty."""
    content = {"application/json": {"schema": body_schema(model)}}
    return {"requestBody": {"required": False, "content": content}}


def _read(model: type[BaseModel]):
    """The request's JSON body as ``model``; an empty body (tritonclient's index) is the model's
    defaults, while one of only whitespace is no JSON text and refused."""
    body = request.get_data()
    if not body:
        return model()
    return model.model_validate(inputs.parse_object(body))


@bp.post(
    "/index",
    responses={200: RepositoryIndex, **protocol_error_responses(400, 401)},
    security=BEARER_SECURITY,
    openapi_extensions=_body(IndexRequest),
)
@require_token
def index():
    """Every model and version, with its state (READY, UNAVAILABLE) and the reason."""
    asked = _read(IndexRequest)
    return repository.index(service_state().store, ready_only=asked.ready)


@bp.post(
    "/models/<name>/load",
    responses={200: LoadResponse, **protocol_error_responses(400, 401, 404, 413, 503, 507)},
    security=BEARER_SECURITY,
    openapi_extensions=_body(LoadRequest),
)
@require_token
@expensive("loading a model")
def load(path: ModelPath):
    """With a `file:N/model.npz` parameter (base64): add it as the model's next version, verified as
    an upload is, and serve the model. Without: serve an unloaded model again."""
    state = service_state()
    parameters = _read(LoadRequest).parameters
    options = upload_options(parameters.config)
    files = {key: value for key, value in (parameters.model_extra or {}).items() if key.startswith("file:")}
    if not files:
        meta = repository.load(state.store, state.registry, path.name)
        return {"name": path.name, "version": str(meta["version"])}
    limit = state.settings.max_model_bytes
    data = _model_file(files, limit)
    meta = repository.upload(state.store, state.registry, path.name, data, options, max_bytes=limit)
    repository.load(state.store, state.registry, path.name)
    return {"name": path.name, "version": str(meta["version"])}


def _model_file(files: dict[str, Any], max_bytes: int) -> bytes:
    if len(files) != 1 or not re.fullmatch(FILE_PARAMETER, key := next(iter(files))):
        raise inputs.invalid(
            ["parameters"],
            f"must hold one model file, 'file:N/model.npz' (a backprop .npz), got {sorted(files)[:4]}",
            "files",
        )
    text = files[key]
    if not isinstance(text, str):
        raise inputs.invalid(["parameters", key], "must be the file in base64", "string_type")
    if len(text) > (max_bytes + 2) // 3 * 4:
        raise ModelTooLarge(
            f"{key} is over the {max_bytes:,} bytes a model file may have (BACKPROP_MAX_MODEL_MB)"
        )
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise inputs.invalid(["parameters", key], f"is not base64: {exc}", "base64") from None


def upload_options(config: str | None) -> UploadOptions:
    """The upload's options from a load's ``config`` (a Triton model configuration's other keys
    are ignored)."""
    if config is None:
        return UploadOptions()
    document = inputs.parse_object(config, ["parameters", "config"])
    known = {key: document[key] for key in UploadOptions.model_fields if key in document}
    try:
        return UploadOptions.model_validate(known)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ["parameters", "config", *first["loc"]]
        raise inputs.invalid(where, first["msg"], first["type"]) from None


@bp.post(
    "/models/<name>/unload",
    responses={200: LoadResponse, **protocol_error_responses(400, 401, 404, 409, 507)},
    security=BEARER_SECURITY,
    openapi_extensions=_body(UnloadRequest),
)
@require_token
def unload(path: ModelPath):
    """Stop serving the model (inference answers 503) until it is loaded again; its files stay.
    The service's default model cannot be unloaded (409)."""
    _read(UnloadRequest)
    state = service_state()
    repository.unload(state.store, state.registry, path.name)
    return {"name": path.name, "version": str(state.store.default_version(path.name))}
