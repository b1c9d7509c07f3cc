"""POST /predict: JSON (one image or a batch), raw uint8 bytes, or a picture of a digit."""

from __future__ import annotations

import numpy as np
from flask import current_app, request
from flask_openapi3 import APIBlueprint, Tag

from service.api import inputs
from service.api.openapi import body_schema
from service.api.routing import After, classify, no_header
from service.api.schemas import PredictQuery, PredictRequest, PredictResponse, error_responses
from service.api.state import ServiceState, service_state
from service.errors import UnsupportedMediaType
from service.images import grey_levels
from service.traffic.router import Header

bp = APIBlueprint("predict", __name__, abp_tags=[Tag(name="predict", description="classify digits")])

_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": body_schema(PredictRequest)},
        # A batch is N x 784 bytes, which JSON Schema cannot say: the schema allows the one length
        # that is always right, so that every body it allows is accepted.
        "application/octet-stream": {
            "schema": {
                "type": "string",
                "format": "binary",
                "minLength": 784,
                "maxLength": 784,
                "description": "784 uint8 pixels, row by row; a batch of N images is N x 784 of them",
            }
        },
        **{
            mimetype: {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "a picture of one digit, any size, dark on light or light on dark: "
                    "grayscaled, cropped to the ink, scaled to 20x20 and centred by mass in 28x28",
                }
            }
            for mimetype in inputs.IMAGE_FORMATS
        },
    },
}


# The query is validated here, and only when there is one, rather than by flask-openapi3 on every
# request (which costs more than the prediction's own validation); the document still lists it,
# generated from the same model.
_QUERY_PARAMETERS = [
    {"name": name, "in": "query", "required": False, "schema": schema}
    for name, schema in PredictQuery.model_json_schema()["properties"].items()
]


_NO_QUERY = PredictQuery()


@bp.post(
    "/predict",
    responses={200: PredictResponse, **error_responses(404, 413, 414, 415, 422, 503)},
    openapi_extensions={"requestBody": _REQUEST_BODY, "parameters": _QUERY_PARAMETERS},
)
def predict():
    """Classify one image (`pixels`), a batch (`instances`), raw N x 784 bytes, or a PNG or JPEG
    picture of a digit."""
    state = service_state()
    query = PredictQuery.model_validate(request.args.to_dict()) if request.args else _NO_QUERY
    with state.tracing.decoding(request.content_length or 0):
        pixels, unit, name, version = _decoded(state, request.mimetype, query.model, query.version)
    document, after = answer(state, pixels, name, version, unit=unit, header=request.headers.get)
    if query.with_pixels:
        seen = grey_levels(pixels, unit=unit).tolist()
        for prediction, image in zip(document["predictions"], seen, strict=True):
            prediction["pixels"] = image
    response = current_app.json.response(document)
    if after is not None:
        response.call_on_close(after)  # a shadow answers after the client has its answer
    return response


def _decoded(
    state: ServiceState, mimetype: str, name: str | None, version: int | None
) -> tuple[np.ndarray, bool, str | None, int | None]:
    """(pixels (N, 784), whether they are on the unit scale, model, version) from the body; a JSON
    body's model and version take the place of the query's."""
    unit = False
    if mimetype == "application/octet-stream":
        pixels = inputs.from_bytes(request.get_data(), max_batch=state.settings.max_batch)
    elif mimetype in inputs.IMAGE_FORMATS:
        with state.expensive.held("a picture"):
            pixels = inputs.from_image(
                request.get_data(), mimetype, max_pixels=state.settings.max_image_pixels
            )
    elif mimetype == "application/json":
        req = parse_json(request.get_data(), max_batch=state.settings.max_batch)
        pixels, unit = req.matrix, req.scale == "unit"
        name = req.model if req.model is not None else name
        version = req.version if req.version is not None else version
    else:
        raise UnsupportedMediaType(
            f"Content-Type {mimetype or '(none)'} is not supported: send application/json, "
            "application/octet-stream, image/png or image/jpeg"
        )
    return pixels, unit, name, version


# The view's own work, which the fast lane (service.api.fast_lane) does too.


def parse_json(body: bytes, *, max_batch: int) -> PredictRequest:
    payload = inputs.parse_predict_json(body)
    return PredictRequest.model_validate(
        payload, context={"max_batch": max_batch, inputs.NUMBERS_CHECKED: True}
    )


def answer(
    state: ServiceState,
    pixels: np.ndarray,
    name: str | None,
    version: int | None,
    *,
    unit: bool,
    header: Header = no_header,
) -> tuple[dict, After]:
    """The answer to a /predict of ``pixels`` (N, 784) by the model (its defaults and traffic policy
    applied), and what to run after it is sent (a shadow, or None)."""
    model, probabilities, after = classify(state, pixels, name, version, unit=unit, header=header)
    labels = probabilities.argmax(axis=1).tolist()
    state.metrics.count_images(model.name, model.version, len(labels))
    document = {
        "model": {"name": model.name, "version": model.version},
        "predictions": [
            {"label": label, "probabilities": row} for label, row in zip(labels, probabilities, strict=True)
        ],
    }
    return document, after
