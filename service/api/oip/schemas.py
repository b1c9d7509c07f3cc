"""The Open Inference Protocol (v2) documents, as Pydantic models: the contract of ``/v2``.

Field names, types and the error shape are the protocol's (KServe's and Triton's "v2" REST API);
what this service accepts within it (one input, ``pixels``; its three datatypes; two outputs) is
said on the fields, so validation and the OpenAPI document say the same.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictBool, model_validator

from service.json_types import json_int

INPUT_NAME = "pixels"
Datatype = Literal["UINT8", "FP32", "FP64"]
OutputName = Literal["probabilities", "label"]
OUTPUT_NAMES: tuple[OutputName, ...] = ("probabilities", "label")

_UNSUPPORTED = {
    "shared_memory_region": "the shared-memory extension is not supported: send the tensor in the body",
    "classification": "the classification extension is not supported: ask for 'label' or 'probabilities'",
}


class _Parameters(BaseModel):
    """A ``$parameters`` object: the keys named here are checked, other keys are allowed (the
    protocol lets clients send their own) and ignored."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _no_unsupported_extension(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key, why in _UNSUPPORTED.items():
                if key in value:
                    raise ValueError(f"{key}: {why}")
        return value


class InputParameters(_Parameters):
    binary_data_size: json_int(ge=0) | None = Field(
        None, description="the tensor's bytes follow the JSON in the body (binary tensor data extension)"
    )


class OutputParameters(_Parameters):
    binary_data: StrictBool | None = Field(
        None, description="return this output as bytes after the JSON (default: binary_data_output)"
    )


class RequestParameters(_Parameters):
    binary_data_output: StrictBool = Field(
        False, description="return the outputs that do not say otherwise as bytes after the JSON"
    )


Dimension = json_int(ge=1, le=1 << 24)


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["pixels"] = Field(description="the model's one input")
    shape: list[Dimension] = Field(
        min_length=2, max_length=3, description="[N, 784] or [N, 28, 28]: N images of 784 pixels"
    )
    datatype: Datatype = Field(description="UINT8, FP32 or FP64, on the 0-255 scale")
    parameters: InputParameters = Field(default_factory=InputParameters)
    data: Annotated[
        Any,
        Field(
            description="the values, row-major, flat or nested as the shape; left out when the "
            "bytes follow the JSON (parameters.binary_data_size)",
            json_schema_extra={"type": "array", "items": {}},
        ),
    ] = None

    @model_validator(mode="after")
    def _data_somewhere(self) -> RequestInput:
        binary = self.parameters.binary_data_size is not None
        if binary == (self.data is not None):
            raise ValueError("give the tensor either in 'data' or as bytes with parameters.binary_data_size")
        return self


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: OutputName = Field(description="probabilities (FP32, [N, 10]) or label (INT64, [N])")
    parameters: OutputParameters = Field(default_factory=OutputParameters)


class InferRequest(BaseModel):
    """``POST /v2/models/NAME[/versions/N]/infer``: one ``pixels`` tensor; the outputs wanted
    (default: both)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=256, description="echoed in the response")
    parameters: RequestParameters = Field(default_factory=RequestParameters)
    inputs: list[RequestInput] = Field(min_length=1, max_length=1)
    outputs: list[RequestOutput] | None = Field(None, min_length=1, max_length=len(OUTPUT_NAMES))

    @model_validator(mode="after")
    def _outputs_once(self) -> InferRequest:
        names = [output.name for output in self.outputs or ()]
        if len(set(names)) != len(names):
            raise ValueError("each output may be asked for once")
        return self


class ResponseOutput(BaseModel):
    name: OutputName
    datatype: Literal["FP32", "INT64"]
    shape: list[int]
    parameters: dict[str, Any] | None = Field(None, description="binary_data_size, for a binary output")
    data: list[float] | None = Field(None, description="row-major, flat; left out for a binary output")


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1: any size")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Liveness(BaseModel):
    live: bool


class Readiness(BaseModel):
    ready: bool
    name: str | None = Field(None, description="the model, for a model's readiness")


class ProtocolError(BaseModel):
    """The protocol's error shape (in place of this API's own under /v2)."""

    error: str


def protocol_error_responses(*statuses: int) -> dict[int, type[ProtocolError]]:
    return dict.fromkeys(statuses, ProtocolError)


# -- the model repository extension (``/v2/repository``) --------------------------------------

FILE_PARAMETER = r"^file:[0-9]{1,9}/model\.npz$"


class IndexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ready: StrictBool = Field(False, description="list only the versions that are ready")


class IndexEntry(BaseModel):
    name: str
    version: str
    state: Literal["READY", "UNAVAILABLE"]
    reason: str = Field(description="why it is unavailable ('unloaded', or what is wrong with it)")


class RepositoryIndex(RootModel[list[IndexEntry]]):
    """Every model's versions, with their states."""


class LoadParameters(BaseModel):
    """``config`` (optional, a JSON object: the upload's options) and at most one model file,
    ``file:N/model.npz``, in base64 (as tritonclient's ``load_model(files=...)`` sends it);
    other parameters are allowed and ignored, other files refused."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, str] = Field(init=False)  # the protocol's load parameters are strings

    config: str | None = Field(
        None,
        max_length=4096,
        description='a JSON object: {"description", "training_source", "make_default"}; other keys '
        "(a Triton model configuration's) are ignored",
    )


class LoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameters: LoadParameters = LoadParameters()


class UnloadParameters(BaseModel):
    model_config = ConfigDict(extra="allow")

    unload_dependents: StrictBool = Field(False, description="no model here has dependents: no effect")


class UnloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameters: UnloadParameters = UnloadParameters()


class LoadResponse(BaseModel):
    name: str
    version: str = Field(description="the version added (files sent), or the one now served")
