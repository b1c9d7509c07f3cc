"""GET /models..., PUT /models/NAME/default, DELETE /models/NAME/versions/N, a version's drift
(GET /models/NAME/versions/N/drift), and each model's retention policy (GET and PUT
/models/NAME/retention)."""

from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from service import drift, drift_window, retention
from service.api.schemas import (
    ModelInfo,
    ModelList,
    ModelPath,
    SetDefaultRequest,
    VersionInfo,
    VersionPath,
    error_responses,
)
from service.api.security import BEARER_SECURITY, require_token, server_paths, token_given, without_paths
from service.api.state import service_state
from service.drift import DriftReport
from service.errors import Conflict, ModelNotFound, ModelUnavailable
from service.retention import RetentionPolicy
from service.traffic import policy as traffic

bp = APIBlueprint("models", __name__, abp_tags=[Tag(name="models", description="the model store")])


def _shown(meta: dict) -> dict:
    """A version's metadata; where its data came from (server paths, also in the loader's notes)
    only to token holders."""
    dataset = meta.get("dataset")
    if not token_given() and isinstance(dataset, dict):
        hidden = ("source", "notes")
        meta = {**meta, "dataset": {k: v for k, v in dataset.items() if k not in hidden}}
        # Versions saved before their texts stopped naming the folder name it elsewhere too.
        meta = without_paths(meta, [str(dataset.get("source") or ""), *server_paths()])
    return meta


def _model_info(name: str, service_default: str | None) -> dict:
    store = service_state().store
    default = store.default_version(name)
    versions, unavailable = [], []
    for version in store.versions(name):
        try:
            meta = _shown(store.metadata(name, version))
        except ModelUnavailable as exc:  # one damaged version must not hide the others
            unavailable.append({"version": version, "reason": exc.message})
            continue
        meta.pop("history", None)  # per-epoch history is in GET .../versions/N
        versions.append({**meta, "is_default": version == default})
    return {
        "name": name,
        "default_version": default,
        "is_service_default": name == service_default,
        "versions": versions,
        "unavailable": unavailable,
        "unloaded": store.is_unloaded(name),
    }


def _service_default() -> str | None:
    try:
        return service_state().store.default_model()
    except ModelNotFound:
        return None


@bp.get("/models", responses={200: ModelList, **error_responses(422)})
def list_models():
    """Every model with its versions and defaults."""
    default = _service_default()
    names = service_state().store.names()
    return {"default_model": default, "models": [_model_info(name, default) for name in names]}


@bp.get("/models/<name>", responses={200: ModelInfo, **error_responses(404, 422)})
def get_model(path: ModelPath):
    """One model: its default version and all versions."""
    service_state().store.existing_versions(path.name)
    return _model_info(path.name, _service_default())


@bp.get(
    "/models/<name>/versions/<int:version>",
    responses={200: VersionInfo, **error_responses(404, 422, 503)},
)
def get_version(path: VersionPath):
    """A version's spec, metrics, training history, sha256, creation time and job."""
    store = service_state().store
    name, version = store.resolve(path.name, path.version)
    return {**_shown(store.metadata(name, version)), "is_default": version == store.default_version(name)}


class DriftQuery(BaseModel):
    window_seconds: int = Field(
        3600,
        ge=drift_window.SLOT_SECONDS,
        le=drift_window.SLOT_SECONDS * drift_window.SLOTS,
        description="how far back the answers are counted, rounded up to whole minutes",
    )


@bp.get(
    "/models/<name>/versions/<int:version>/drift",
    responses={200: DriftReport, **error_responses(404, 409, 422, 503)},
)
def get_drift(path: VersionPath, query: DriftQuery):
    """What the version answered in the last hour (or ``window_seconds``) on this machine's workers,
    against what it answered on held-out digits when it was trained: PSI of labels and of confidence,
    the share below its out-of-distribution threshold, and a status (ok, watch, drifting) with the
    reasons."""
    state = service_state()
    name, version = state.store.resolve(path.name, path.version)
    meta = state.store.metadata(name, version)
    reference = meta.get("drift_reference")
    if reference is None:
        raise Conflict(f"{name} v{version} has no drift reference: only versions trained here record one")
    if not state.settings.drift:
        raise Conflict("drift is not counted: start the service with BACKPROP_DRIFT=1")
    classes = len(reference["labels"])
    counts = state.metrics.windows.counts(name, version, classes, query.window_seconds)
    return drift.compare(name, version, reference, counts, query.window_seconds).model_dump()


@bp.put(
    "/models/<name>/default",
    responses={200: ModelInfo, **error_responses(401, 404, 415, 422, 503, 507)},
    security=BEARER_SECURITY,
)
@require_token
def set_default(path: ModelPath, body: SetDefaultRequest):
    """Make a version the model's default (and the model the service's default)."""
    state = service_state()
    state.store.set_default(path.name, body.version, service_wide=body.service_wide)
    state.registry.forget_defaults()
    return _model_info(path.name, _service_default())


@bp.delete(
    "/models/<name>/versions/<int:version>",
    responses={204: None, **error_responses(401, 404, 409, 422)},
    security=BEARER_SECURITY,
)
@require_token
def delete_version(path: VersionPath):
    """Delete a version; the default version, and a version in the traffic policy, answer 409."""
    store = service_state().store
    traffic.refuse_deleting(store, path.name, path.version)
    store.delete(path.name, path.version)
    return "", 204


class RetentionApplied(RetentionPolicy):
    deleted: list[int] = Field(description="the versions the policy deleted when it was set")


@bp.get("/models/<name>/retention", responses={200: RetentionPolicy, **error_responses(404, 422)})
def get_retention(path: ModelPath):
    """How many versions of the model the store keeps."""
    store = service_state().store
    store.existing_versions(path.name)
    return retention.read(store, path.name).model_dump()


@bp.put(
    "/models/<name>/retention",
    responses={200: RetentionApplied, **error_responses(401, 404, 415, 422, 507)},
    security=BEARER_SECURITY,
)
@require_token
def set_retention(path: ModelPath, body: RetentionPolicy):
    """Keep the newest `keep_latest` versions (null: all), and delete older ones now and whenever a
    version lands; never the default version or the shipped seed."""
    deleted = retention.write(service_state().store, path.name, body)
    return {**body.model_dump(), "deleted": deleted}
