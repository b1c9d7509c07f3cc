"""Models in and out: ``POST /models/NAME/versions`` (upload), ``GET .../versions/N/file``
(download) and ``GET .../versions/N/model.onnx`` (ONNX export).

Cost: an upload reads at most BACKPROP_MAX_MODEL_MB, parses it twice over (the zip's headers, then
each array), runs one test prediction, hashes and writes it: about a second for the largest file
allowed, milliseconds for the shipped one. A download reads and hashes one file; an export builds
and checks a graph of the weights. All three are expensive requests (``service.api.cost``): behind
nginx they run in the expensive pool, never in the one that answers predictions.
"""

from __future__ import annotations

import base64
from typing import Any

from flask import Response, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import Field

from service import repository
from service.api import inputs
from service.api.cost import expensive
from service.api.openapi import body_schema
from service.api.schemas import ModelPath, VersionInfo, VersionPath, error_responses
from service.api.security import BEARER_SECURITY, require_token
from service.api.state import service_state
from service.errors import InvalidInput, ModelTooLarge, UnsupportedMediaType
from service.onnx_export import ExportOptions, to_onnx
from service.repository import TEXT_MAX_LENGTH, UploadOptions

# Percent-encoded, a character takes up to 12 bytes of the query (4 of UTF-8, each as %XX). Both
# text options this long, with the longest model name and the flag, keep the request line within
# the REQUEST_LINE_MAX bytes the front and gunicorn read: a valid query is never refused as a 414.
QUERY_TEXT_MAX_LENGTH = 300


def _query_text(name: str) -> Any:
    said = UploadOptions.model_fields[name].description
    return Field(
        None,
        max_length=QUERY_TEXT_MAX_LENGTH,
        description=f"{said} (at most {QUERY_TEXT_MAX_LENGTH} characters in the query string, "
        f"{TEXT_MAX_LENGTH} in a multipart metadata part)",
    )


class UploadQuery(UploadOptions):
    """The upload's options as a query string, their text shorter than in the metadata part."""

    description: str | None = _query_text("description")
    training_source: str | None = _query_text("training_source")
    # A query string holds text: "true" and "1" are read as a flag here, and only here.
    make_default: bool = Field(False, description=UploadOptions.model_fields["make_default"].description)


bp = APIBlueprint("transfer", __name__, abp_tags=[Tag(name="models", description="the model store")])

_MULTIPART_SLACK = 64 << 10  # part headers and the metadata part, beside the file
_UPLOAD_BODY = {
    "required": True,
    "content": {
        "application/octet-stream": {
            "schema": {"type": "string", "format": "binary", "description": "the .npz model file"}
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "the .npz model file"},
                    "metadata": {**body_schema(UploadOptions), "description": "options, as JSON"},
                },
            },
            "encoding": {"metadata": {"contentType": "application/json"}},
        },
    },
}


def _upload_body(max_bytes: int) -> tuple[bytes, dict[str, Any]]:
    """(the model file, the options of a multipart metadata part)."""
    declared = request.content_length
    if declared is not None and declared > max_bytes + _MULTIPART_SLACK:
        raise ModelTooLarge(
            f"the body is {declared:,} bytes, over the {max_bytes:,} a model file may have "
            "(BACKPROP_MAX_MODEL_MB)"
        )
    if request.mimetype == "application/octet-stream":
        return request.get_data(), {}
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            f"Content-Type {request.mimetype or '(none)'} is not supported: send the .npz as "
            "application/octet-stream, or multipart/form-data with a part named 'file'"
        )
    part = request.files.get("file")
    if part is None:
        raise InvalidInput.at(["file"], "is required: the .npz model file as a part named 'file'", "missing")
    data = part.read(max_bytes + 1)
    said = request.form.get("metadata") or (
        m.read().decode(errors="replace") if (m := request.files.get("metadata")) else None
    )
    return data, {} if said is None else inputs.parse_object(said, ["metadata"])


@bp.post(
    "/models/<name>/versions",
    responses={201: VersionInfo, **error_responses(401, 413, 414, 415, 422, 503, 507)},
    security=BEARER_SECURITY,
    openapi_extensions={"requestBody": _UPLOAD_BODY},
)
@require_token
@expensive("an upload")
def upload(path: ModelPath, query: UploadQuery):
    """Add a version from a `.npz` file: verified as every load is (arrays only, headers checked
    against the spec before any data is read, finite weights) and by the test prediction, then
    numbered past every number the model ever had. Options in the query string, or in a multipart
    `metadata` part."""
    state = service_state()
    data, said = _upload_body(state.settings.max_model_bytes)
    options = UploadOptions.model_validate({**query.model_dump(exclude_unset=True), **said})
    meta = repository.upload(
        state.store, state.registry, path.name, data, options, max_bytes=state.settings.max_model_bytes
    )
    location = f"/models/{path.name}/versions/{meta['version']}"
    is_default = state.store.default_version(path.name) == meta["version"]
    return {**meta, "is_default": is_default}, 201, {"Location": location}


_FILE = {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}


@bp.get(
    "/models/<name>/versions/<int:version>/file",
    responses={200: None, **error_responses(401, 404, 422, 503)},
    security=BEARER_SECURITY,
    openapi_extensions={"responses": {"200": {"description": "the .npz model file", **_FILE}}},
)
@require_token
@expensive("a download")
def download(path: VersionPath):
    """The version's `.npz` file, as stored; its sha256 in `Repr-Digest` (and as the `ETag`)."""
    store = service_state().store
    name, version = store.resolve(path.name, path.version)
    data, meta = store.read_file(name, version)
    sha256 = meta["sha256"]
    return Response(
        data,
        mimetype="application/octet-stream",
        headers={
            "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(sha256)).decode()}:",
            "ETag": f'"{sha256}"',
            "Content-Disposition": f'attachment; filename="{name}-v{version}.npz"',
        },
    )


@bp.get(
    "/models/<name>/versions/<int:version>/model.onnx",
    responses={200: None, **error_responses(401, 404, 414, 422, 501, 503)},
    security=BEARER_SECURITY,
    openapi_extensions={"responses": {"200": {"description": "the version as an ONNX model", **_FILE}}},
)
@require_token
@expensive("an ONNX export")
def export_onnx(path: VersionPath, query: ExportOptions):
    """The version as a standard ONNX graph (`pixels` [N, 784] in, `probabilities` and `label`
    out), checked with `onnx.checker`: for onnxruntime or Triton's onnxruntime backend."""
    store = service_state().store
    network, meta = store.load(path.name, path.version)
    return Response(
        to_onnx(network, meta, query),
        mimetype="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{meta["name"]}-v{meta["version"]}.onnx"'},
    )
