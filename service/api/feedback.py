"""POST /feedback (anyone, unless BACKPROP_FEEDBACK is off): a correction, by pixels or by the request
id of a kept input; GET /feedback, GET, PATCH and DELETE /feedback/ID (token holders): the stored
examples, their counts per digit and the confusions they reveal (``service.feedback.store``)."""

from __future__ import annotations

from flask import request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.api import inputs
from service.api.access import REQUEST_ID_PATTERN
from service.api.schemas import OneImage, error_responses
from service.api.security import BEARER_SECURITY, require_token
from service.api.state import service_state
from service.errors import FeedbackOff
from service.images import grey_levels
from service.json_types import json_int
from service.store import MAX_VERSION, ModelName

bp = APIBlueprint(
    "feedback", __name__, abp_tags=[Tag(name="feedback", description="corrections: training data from users")]
)

Digit = json_int(ge=0, le=9)


class CorrectionRequest(BaseModel):
    """The right label of an image the service answered: its pixels, or the request id (and
    position in the request) of an input the service kept (BACKPROP_CAPTURE_FRACTION)."""

    model_config = ConfigDict(
        extra="forbid",
        arbitrary_types_allowed=True,
        json_schema_extra={"oneOf": [{"required": ["pixels"]}, {"required": ["request_id"]}]},
    )

    label: Digit = Field(description="the digit the image shows")
    pixels: OneImage = None
    # Not nullable: either is sent as a value or left out, as the one-of above says.
    request_id: str = Field(
        None, pattern=REQUEST_ID_PATTERN, description="the X-Request-ID of a kept /predict"
    )
    position: json_int(ge=0, le=15) = Field(0, description="which image of that request (0: the first)")
    predicted: Digit | None = Field(None, description="what the service answered, with pixels")
    model: ModelName | None = Field(None, description="the model that answered, with pixels")
    version: json_int(ge=1, le=MAX_VERSION) | None = Field(None, description="its version")

    @model_validator(mode="after")
    def _one_image(self) -> CorrectionRequest:
        if (self.pixels is None) == (self.request_id is None):
            raise ValueError("send exactly one of 'pixels' (the image) or 'request_id' (a kept input)")
        if self.pixels is not None:
            inputs.check_range(self.pixels, "pixels", batch=False, scale="pixel")
        return self


class Example(BaseModel):
    id: int
    created: float = Field(description="seconds since the epoch")
    label: int | None = Field(description="the right digit; null for a kept input nobody corrected")
    predicted: int | None
    model: str | None
    version: int | None
    probabilities: list[float] | None = Field(description="of a kept input: what answered it")
    request_id: str | None
    position: int | None
    corrected: float | None = Field(description="when it was labelled, seconds since the epoch")
    pixels: list[int] | None = Field(
        None, description="784 grey levels, row by row: of one example, or a list with_pixels"
    )


class Summary(BaseModel):
    corrections: int
    kept_inputs: int
    max_examples: int
    per_label: list[int] = Field(description="corrections of each digit, 0-9")
    confusions: list[list[int]] = Field(description="[answered][corrected]: how often each mistake was made")


class ExampleList(BaseModel):
    examples: list[Example]
    total: int
    limit: int
    offset: int
    summary: Summary


class ExamplesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=1_000_000_000)
    # Not nullable: left out, it lists both (a nullable query parameter has no single spelling).
    corrected: bool = Field(None, description="only corrections (true) or only kept inputs (false)")
    with_pixels: bool = Field(False, description="each example with its pixels")


class ExamplePath(BaseModel):
    example_id: int = Field(ge=1, le=2**62)


class Relabel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Digit


def client_address() -> str:
    """The address the request came from: behind this service's nginx (gunicorn on a unix socket)
    the last X-Forwarded-For entry, the one nginx added; otherwise the connection's own."""
    remote = request.remote_addr or ""
    if remote and not remote.startswith(("/", "unix")):
        return remote
    forwarded = request.headers.get("X-Forwarded-For", "")
    return forwarded.rsplit(",", 1)[-1].strip()[:64] or "unknown"


@bp.post(
    "/feedback", responses={201: Example, **error_responses(403, 404, 409, 413, 415, 422, 429, 503, 507)}
)
def correct(body: CorrectionRequest):
    """Give the right label of a digit the service got wrong (or right): it joins the corrections,
    the ``feedback`` dataset training can use. At most BACKPROP_FEEDBACK_PER_MINUTE a minute per
    client address (429), at most BACKPROP_FEEDBACK_MAX_EXAMPLES stored (507)."""
    state = service_state()
    if not state.settings.feedback:
        raise FeedbackOff("corrections are turned off here (BACKPROP_FEEDBACK=0)")
    client = client_address()
    if body.pixels is not None:
        example = state.feedback.correct(
            grey_levels(body.pixels[0]),
            body.label,
            client,
            predicted=body.predicted,
            model=body.model,
            version=body.version,
        )
    else:
        example = state.feedback.correct_request(body.request_id, body.position, body.label, client)
    return example, 201, {"Location": f"/feedback/{example['id']}"}


@bp.get("/feedback", responses={200: ExampleList, **error_responses(401, 422, 503)}, security=BEARER_SECURITY)
@require_token
def list_examples(query: ExamplesQuery):
    """The stored examples, newest first, with how many corrections each digit has and the mistakes
    they reveal."""
    store = service_state().feedback
    examples, total = store.list(
        limit=query.limit, offset=query.offset, corrected=query.corrected, pixels=query.with_pixels
    )
    return {
        "examples": examples,
        "total": total,
        "limit": query.limit,
        "offset": query.offset,
        "summary": store.summary(),
    }


@bp.get(
    "/feedback/<int:example_id>",
    responses={200: Example, **error_responses(401, 404, 422, 503)},
    security=BEARER_SECURITY,
)
@require_token
def get_example(path: ExamplePath):
    """One example with its pixels."""
    return service_state().feedback.get(path.example_id, pixels=True)


@bp.patch(
    "/feedback/<int:example_id>",
    responses={200: Example, **error_responses(401, 404, 415, 422, 503, 507)},
    security=BEARER_SECURITY,
)
@require_token
def relabel(path: ExamplePath, body: Relabel):
    """Set an example's right label (a kept input becomes a correction)."""
    return service_state().feedback.relabel(path.example_id, body.label)


@bp.delete(
    "/feedback/<int:example_id>",
    responses={204: None, **error_responses(401, 404, 422, 503, 507)},
    security=BEARER_SECURITY,
)
@require_token
def delete(path: ExamplePath):
    """Delete an example for good."""
    service_state().feedback.delete(path.example_id)
    return "", 204
