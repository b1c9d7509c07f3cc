"""GET, PUT and DELETE /models/NAME/traffic: the model's traffic policy and its verdict.

Cost: a PUT loads each version it names and runs its test prediction (milliseconds each); a GET
reads the policy and sums this machine's workers' counters. Both are cheap requests.
"""

from __future__ import annotations

from typing import Any

from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from service.api.schemas import ModelPath, error_responses
from service.api.security import BEARER_SECURITY, require_token, token_given
from service.api.state import service_state
from service.traffic import policy as policies
from service.traffic.policy import StoredPolicy, TrafficPolicy

bp = APIBlueprint("traffic", __name__, abp_tags=[Tag(name="traffic", description="canary, A/B and shadow")])


class VersionFigures(BaseModel):
    requests: int
    errors: int
    images: int
    mean_confidence: float | None
    compared: int | None = Field(None, description="a shadow: images it also classified")
    dropped: int | None = Field(
        None,
        description="a shadow: images it skipped (a busy worker compares a sample of its requests)",
    )
    agreement: float | None = Field(None, description="a shadow: the share of those it labelled alike")
    mean_absolute_difference: float | None = Field(None, description="a shadow: of the probabilities")


class TrafficView(BaseModel):
    name: str
    default_version: int
    policy: StoredPolicy | None = Field(description="none: requests that name no version get the default")
    figures: dict[str, VersionFigures] = Field(
        description="per version, since the policy's revision began, summed over this machine's workers"
    )
    examples: list[dict[str, Any]] = Field(
        description="disagreements of the shadow (28x28 pixels and both answers); token holders only"
    )


def _view(name: str) -> dict[str, Any]:
    state = service_state()
    state.store.existing_versions(name)
    policy = policies.read(state.store, name)
    figures = state.verdicts.figures(name, policy.revision) if policy else {}
    examples = state.verdicts.examples(name, policy.revision) if policy and token_given() else []
    return {
        "name": name,
        "default_version": state.store.default_version(name),
        "policy": policy.model_dump() if policy else None,
        "figures": figures,
        "examples": examples,
    }


@bp.get("/models/<name>/traffic", responses={200: TrafficView, **error_responses(404, 422)})
def get_traffic(path: ModelPath):
    """The model's traffic policy, with the live figures of each of its versions."""
    return _view(path.name)


@bp.put(
    "/models/<name>/traffic",
    responses={200: TrafficView, **error_responses(401, 404, 415, 422, 507)},
    security=BEARER_SECURITY,
)
@require_token
def set_traffic(path: ModelPath, body: TrafficPolicy):
    """Set the policy (a new revision: its figures start at zero): a weighted `split`, a
    `sticky_header`, a `shadow`; every version must pass the test prediction (else 422)."""
    state = service_state()
    policies.write(state.store, path.name, body)
    state.router.forget()
    return _view(path.name)


@bp.delete(
    "/models/<name>/traffic",
    responses={204: None, **error_responses(401, 404, 422)},
    security=BEARER_SECURITY,
)
@require_token
def delete_traffic(path: ModelPath):
    """Back to the plain default: every request that names no version gets the default version."""
    state = service_state()
    policies.delete(state.store, path.name)
    state.router.forget()
    return "", 204
