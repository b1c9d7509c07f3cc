"""POST /explain: per-pixel attributions with the prediction; GET /explain/heatmap.svg: as a picture."""

from __future__ import annotations

import base64
import binascii
from dataclasses import fields

import numpy as np
from flask import Response, request
from flask_openapi3 import APIBlueprint, Tag

from service.api import inputs
from service.api.schemas import ExplainQuery, ExplainRequest, ExplainResponse, error_responses
from service.api.state import service_state
from service.errors import InvalidInput, UnsupportedMediaType
from service.explaining import ExplainSettings, caption, explain_images
from service.heatmap import heatmap_svg

bp = APIBlueprint(
    "explain", __name__, abp_tags=[Tag(name="explain", description="why the model said what it said")]
)

_HOW = tuple(field.name for field in fields(ExplainSettings))
_QUERY_PARAMETERS = [
    {"name": name, "in": "query", "required": name == "image", "schema": schema}
    for name, schema in ExplainQuery.model_json_schema()["properties"].items()
]


@bp.post(
    "/explain",
    responses={200: ExplainResponse, **error_responses(404, 413, 415, 422, 503)},
    openapi_extensions={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ExplainRequest.model_json_schema()}},
        }
    },
)
def explain():
    """Attributions of every pixel to a class's score, for one image (`pixels`) or a few (`instances`)."""
    state = service_state()
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type {request.mimetype or '(none)'} is not supported: send application/json"
        )
    payload = inputs.parse_predict_json(request.get_data())
    req = ExplainRequest.model_validate(payload, context={"max_batch": state.settings.explain_max_batch})
    model = state.registry.get(req.model, req.version)
    how = ExplainSettings(**{name: getattr(req, name) for name in _HOW})
    explanations = explain_images(model, req.matrix, how, unit_scale=req.scale == "unit")
    state.metrics.images.labels(model.name, str(model.version)).inc(len(explanations))
    return {
        "model": {"name": model.name, "version": model.version},
        "method": req.method,
        "score": req.score,
        "explanations": explanations,
    }


def _query_value(text: str):
    """A query string's value as JSON would have it: numbers as numbers, the rest as text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


@bp.get(
    "/explain/heatmap.svg",
    responses={200: None, **error_responses(404, 414, 422, 503)},
    openapi_extensions={
        "parameters": _QUERY_PARAMETERS,
        "responses": {"200": {"description": "the heat map", "content": {"image/svg+xml": {}}}},
    },
)
def heatmap():
    """One image's explanation as an SVG heat map over the digit (red raised the score, blue lowered it)."""
    state = service_state()
    query = ExplainQuery.model_validate({k: _query_value(v) for k, v in request.args.items()})
    try:
        raw = base64.urlsafe_b64decode(query.image + "=" * (-len(query.image) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != inputs.PIXELS:
        msg = f"must be {inputs.PIXELS} bytes, base64url-encoded; it decodes to {len(raw)}"
        raise InvalidInput(f"image: {msg}", details=[{"loc": ["image"], "msg": msg, "type": "value_error"}])
    pixels = np.frombuffer(raw, dtype=np.uint8).reshape(1, -1)
    model = state.registry.get(query.model, query.version)
    how = ExplainSettings(**{name: getattr(query, name) for name in _HOW})
    (explanation,) = explain_images(model, pixels, how)
    svg = heatmap_svg(
        pixels[0], np.asarray(explanation["attributions"]), caption=caption(model, explanation, how.method)
    )
    return Response(svg, mimetype="image/svg+xml")
