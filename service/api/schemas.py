"""The API contract: request and response models. Validation, serialization and the OpenAPI
document all come from these. Pixel arrays are validated by NumPy (see ``service.api.inputs``)
behind a plain validator, while ``WithJsonSchema`` keeps them fully described in the document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from service.api import inputs
from service.explaining import ExplainOptions
from service.jobs.schemas import Job
from service.json_types import json_int
from service.nn.explain import Method, Score
from service.store import MAX_VERSION, ModelName

_PIXEL_ITEMS = {"type": "number", "minimum": 0, "maximum": 255}
_ROW_SCHEMA = {
    "type": "array",
    "items": _PIXEL_ITEMS,
    "minItems": inputs.PIXELS,
    "maxItems": inputs.PIXELS,
    "description": "784 grayscale values, row by row (0 background, 255 ink; 0-1 with scale=unit)",
}


def _max_batch(info: ValidationInfo) -> int:
    return (info.context or {}).get("max_batch", 16384)


def _pixels(value: Any, info: ValidationInfo):
    inputs.numbers_only(value, info.context, "pixels", batch=False)
    return inputs.to_matrix(value, "pixels", batch=False, max_batch=1)


def _instances(value: Any, info: ValidationInfo):
    inputs.numbers_only(value, info.context, "instances", batch=True)
    return inputs.to_matrix(value, "instances", batch=True, max_batch=_max_batch(info))


# One image's 784 pixels, validated by NumPy and described in full in the document.
OneImage = Annotated[Any, PlainValidator(_pixels), WithJsonSchema(_ROW_SCHEMA)]


class PredictRequest(BaseModel):
    """One image in ``pixels`` or several in ``instances``."""

    model_config = ConfigDict(
        extra="forbid",
        arbitrary_types_allowed=True,
        json_schema_extra={
            "allOf": [
                # Exactly one of the two, as the validator below insists: the document says so too.
                {"oneOf": [{"required": ["pixels"]}, {"required": ["instances"]}]},
                # Values on the 0-1 scale when the request says so: "if scale is unit, then at most
                # 1", spelled without if/then, which the OpenAPI model of flask-openapi3 drops.
                {
                    "anyOf": [
                        {"properties": {"scale": {"const": "pixel"}}},
                        {
                            "properties": {
                                "pixels": {"items": {"maximum": 1}},
                                "instances": {"items": {"items": {"maximum": 1}}},
                            }
                        },
                    ]
                },
            ]
        },
    )

    pixels: OneImage = None
    instances: Annotated[
        Any,
        PlainValidator(_instances),
        WithJsonSchema(
            {"type": "array", "items": _ROW_SCHEMA, "minItems": 1, "description": "a batch of images"}
        ),
    ] = None
    model: ModelName | None = Field(None, description="model name; default: the service's default model")
    version: json_int(ge=1, le=MAX_VERSION) | None = Field(
        None, description="model version; default: the model's default"
    )
    scale: Literal["pixel", "unit"] = Field("pixel", description="pixel: values 0-255; unit: values 0-1")

    @model_validator(mode="after")
    def _one_input_in_range(self) -> PredictRequest:
        if (self.pixels is None) == (self.instances is None):
            raise ValueError("send exactly one of 'pixels' (one image) or 'instances' (a batch)")
        field = "pixels" if self.pixels is not None else "instances"
        inputs.check_range(self.matrix, field, batch=field == "instances", scale=self.scale)
        return self

    @property
    def matrix(self):
        return self.pixels if self.pixels is not None else self.instances


class PredictQuery(BaseModel):
    """Model selection in the query string: for raw ``application/octet-stream`` bodies, and for
    JSON bodies that leave ``model`` or ``version`` out (the body's own fields come first)."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName | None = None
    version: int | None = Field(None, ge=1, le=MAX_VERSION)
    with_pixels: bool = Field(
        False,
        description="each prediction also gives the 784 pixels (0-255) the model saw: for a picture, as "
        "the service prepared it; the draw page sends them back with a correction (POST /feedback)",
    )


class ExplainRequest(PredictRequest, ExplainOptions):
    """The inputs of ``/predict`` (at most ``BACKPROP_EXPLAIN_MAX_BATCH`` images), and how to explain."""


class ExplainQuery(ExplainOptions):
    """``GET /explain/heatmap.svg``: one image in the query, base64url, and how to explain it."""

    image: str = Field(
        # 784 bytes are 261 groups of four characters and a last byte in two, whose second character
        # carries 4 zero bits: so every string the pattern allows decodes to 784 bytes.
        pattern=r"^[A-Za-z0-9_-]{1045}[AQgw](==)?$",
        description="784 uint8 pixels, row by row, base64url-encoded (1,046 characters, or 1,048 padded)",
    )
    model: ModelName | None = None
    version: json_int(ge=1, le=MAX_VERSION) | None = None


class ModelRef(BaseModel):
    name: str
    version: int


class Prediction(BaseModel):
    label: int = Field(description="most probable class")
    probabilities: list[float] = Field(description="one probability per class, summing to 1")
    pixels: list[int] | None = Field(None, description="with ?with_pixels=true: the image the model saw")


class PredictResponse(BaseModel):
    model: ModelRef
    predictions: list[Prediction]


class Explanation(BaseModel):
    label: int = Field(description="most probable class")
    target: int = Field(description="the class whose score is explained")
    probabilities: list[float]
    attributions: list[float] = Field(
        description="one per pixel, row by row: + raised the score, - lowered it"
    )
    score_change: float | None = Field(
        None, description="integrated gradients: the score's change from a black image, which they add up to"
    )


class ExplainResponse(BaseModel):
    model: ModelRef
    method: Method
    score: Score
    explanations: list[Explanation]


class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(description="where: field names and indexes")
    msg: str
    type: str


class ErrorInfo(BaseModel):
    code: str = Field(examples=["validation_error"])
    message: str
    details: list[ErrorDetail] = []


class ErrorBody(BaseModel):
    error: ErrorInfo


def error_responses(*statuses: int) -> dict[int, type[ErrorBody]]:
    """OpenAPI responses: these statuses answer in the one error shape."""
    return dict.fromkeys(statuses, ErrorBody)


class ModelPath(BaseModel):
    name: ModelName


class VersionPath(BaseModel):
    name: ModelName
    version: int = Field(ge=1, le=MAX_VERSION)


class VersionInfo(BaseModel):
    """A stored version: its metadata sidecar."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: int
    sha256: str
    created: str
    size_bytes: int
    spec: dict[str, Any]
    metrics: dict[str, Any] = {}
    training: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None
    job: str | None = None
    source: Literal["training", "upload"] | None = Field(
        None, description="where the version came from (none: the model this service ships with)"
    )
    drift_reference: dict[str, Any] | None = Field(
        None, description="its answers on held-out digits, for drift (none: not trained here)"
    )
    is_default: bool = False


class UnavailableVersion(BaseModel):
    version: int
    reason: str = Field(description="why it cannot serve, e.g. its file is corrupt")


class ModelInfo(BaseModel):
    name: str
    default_version: int
    is_service_default: bool
    versions: list[VersionInfo]
    unavailable: list[UnavailableVersion] = Field([], description="damaged versions, with the reason")
    unloaded: bool = Field(
        False, description="unloaded through /v2/repository: it answers nothing until loaded again"
    )


class ModelList(BaseModel):
    default_model: str | None
    models: list[ModelInfo]


class SetDefaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: json_int(ge=1, le=MAX_VERSION) = Field(description="the version to make the model's default")
    service_wide: bool = Field(
        True, strict=True, description="also make this model the service's default model"
    )


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    token_required: bool = Field(
        description="training and changing models need 'Authorization: Bearer <BACKPROP_API_TOKEN>'"
    )
    drift_counted: bool = Field(False, description="answers are counted for drift (BACKPROP_DRIFT)")
    feedback_accepted: bool = Field(True, description="POST /feedback takes corrections (BACKPROP_FEEDBACK)")


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    model: ModelRef
    training_workers: int | None = Field(
        None, description="training workers alive (0: jobs wait; null: the job store cannot say)"
    )


class JobList(BaseModel):
    jobs: list[Job]
    total: int
    limit: int
    offset: int


class JobsQuery(BaseModel):
    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=1_000_000_000)


class JobPath(BaseModel):
    job_id: str = Field(pattern=r"^[0-9a-f]{32}$")


class JobAccepted(BaseModel):
    id: str
    status: Literal["queued"]
    location: str
