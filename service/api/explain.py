"""POST /explain: per-pixel attributions with the prediction; GET /explain/heatmap.svg: as a picture."""

from __future__ import annotations

import base64

import numpy as np
from flask import Response, request
from flask_openapi3 import APIBlueprint, Tag

from service.api import inputs
from service.api.cost import expensive
from service.api.openapi import body_schema
from service.api.schemas import ExplainQuery, ExplainRequest, ExplainResponse, error_responses
from service.api.state import service_state
from service.errors import UnsupportedMediaType
from service.explaining import caption, explain_images
from service.heatmap import heatmap_svg

bp = APIBlueprint(
    "explain", __name__, abp_tags=[Tag(name="explain", description="why the model said what it said")]
)


def _omitted_not_null(schema: dict) -> dict:
    """A query parameter is left out for its default: the document need not offer null."""
    options = [option for option in schema.get("anyOf", []) if option.get("type") != "null"]
    if len(options) != 1:
        return schema
    rest = {key: value for key, value in schema.items() if key not in ("anyOf", "default")}
    return {**options[0], **rest}


_QUERY_PARAMETERS = [
    {"name": name, "in": "query", "required": name == "image", "schema": _omitted_not_null(schema)}
    for name, schema in ExplainQuery.model_json_schema()["properties"].items()
]


@bp.post(
    "/explain",
    responses={200: ExplainResponse, **error_responses(404, 413, 415, 422, 503)},
    openapi_extensions={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": body_schema(ExplainRequest)}},
        }
    },
)
@expensive("an explanation")
def explain():
    """Attributions of every pixel to a class's score, for one image (`pixels`) or a few (`instances`)."""
    state = service_state()
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type {request.mimetype or '(none)'} is not supported: send application/json"
        )
    payload = inputs.parse_predict_json(request.get_data())
    context = {"max_batch": state.settings.explain_max_batch, inputs.NUMBERS_CHECKED: True}
    req = ExplainRequest.model_validate(payload, context=context)
    model = state.registry.get(req.model, req.version)
    attributes = {
        "backprop.model": model.name,
        "backprop.version": model.version,
        "backprop.method": req.method,
        "backprop.images": len(req.matrix),
    }
    with state.tracing.span("explanation", **attributes):
        explanations = explain_images(model, req.matrix, req, unit_scale=req.scale == "unit")
    state.metrics.count_images(model.name, model.version, len(explanations))
    return {
        "model": {"name": model.name, "version": model.version},
        "method": req.method,
        "score": req.score,
        "explanations": explanations,
    }


def _numeric(schema: dict) -> bool:
    types = {schema.get("type"), *(option.get("type") for option in schema.get("anyOf", []))}
    return bool(types & {"integer", "number"})


_NUMERIC_PARAMETERS = {p["name"] for p in _QUERY_PARAMETERS if _numeric(p["schema"])}


def _query_value(name: str, text: str):
    """A query string's value as JSON would have it: numbers where the schema has numbers."""
    if name in _NUMERIC_PARAMETERS:
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
    return text


@bp.get(
    "/explain/heatmap.svg",
    responses={200: None, **error_responses(404, 414, 422, 503)},
    openapi_extensions={
        "parameters": _QUERY_PARAMETERS,
        "responses": {"200": {"description": "the heat map", "content": {"image/svg+xml": {}}}},
    },
)
@expensive("a heat map")
def heatmap():
    """One image's explanation as an SVG heat map over the digit (red raised the score, blue lowered it)."""
    state = service_state()
    query = ExplainQuery.model_validate({k: _query_value(k, v) for k, v in request.args.items()})
    # The schema's pattern admits only strings of 784 bytes.
    raw = base64.urlsafe_b64decode(query.image.rstrip("=") + "==")
    pixels = np.frombuffer(raw, dtype=np.uint8).reshape(1, -1)
    model = state.registry.get(query.model, query.version)
    (explanation,) = explain_images(model, pixels, query)
    svg = heatmap_svg(
        pixels[0], np.asarray(explanation["attributions"]), caption=caption(model, explanation, query.method)
    )
    return Response(svg, mimetype="image/svg+xml")
