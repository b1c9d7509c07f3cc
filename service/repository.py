"""Models in and out of the store: uploads (``POST /models/NAME/versions`` and the protocol's
``load`` with files), and the protocol's model repository (index, unload, load again).

A model is unloaded by a marker file in its folder (``ModelStore.is_unloaded``), so every worker
and machine stops serving it within ``BACKPROP_DEFAULT_REFRESH_SECONDS``; its files stay. No Flask
here: the API's views call these.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.errors import Conflict, ModelFileError, ModelNotFound, ModelTooLarge, ModelUnavailable
from service.files import atomic_write, fsync_dir, storage_errors
from service.registry import ModelRegistry
from service.store import UNLOADED, ModelStore

State = Literal["READY", "UNAVAILABLE"]
TEXT_MAX_LENGTH = 500  # characters of an upload's description and of its training source


class UploadOptions(BaseModel):
    """What may come with an uploaded model file: the query string of ``POST
    /models/NAME/versions``, its multipart ``metadata`` part, or the protocol's load ``config``."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(
        None, max_length=TEXT_MAX_LENGTH, description="what this version is, in words"
    )
    training_source: str | None = Field(
        None, max_length=TEXT_MAX_LENGTH, description="where it was trained: a machine, a repository, a URL"
    )
    make_default: bool = Field(
        False, strict=True, description="make the new version the default (and the model the service's)"
    )


def upload(
    store: ModelStore,
    registry: ModelRegistry,
    name: str,
    data: bytes,
    options: UploadOptions,
    *,
    max_bytes: int,
) -> dict[str, Any]:
    """Verify and store ``data`` (a ``.npz``) as the next version of ``name``; its sidecar."""
    if len(data) > max_bytes:
        raise ModelTooLarge(
            f"the model file is {len(data):,} bytes, over the {max_bytes:,} an upload may carry "
            "(BACKPROP_MAX_MODEL_MB)"
        )
    said = options.model_dump(include={"description", "training_source"}, exclude_none=True)
    meta = store.upload(name, data, said)
    if options.make_default:
        store.set_default(name, meta["version"])
        registry.forget_defaults()
    return meta


def index(store: ModelStore, *, ready_only: bool = False) -> list[dict[str, str]]:
    """Every version of every model, with its state and, unless it is ready, the reason.

    READY means listed and servable on request (a file damaged since its sidecar was written shows
    when the version is loaded: reading every file here would make the index cost the store)."""
    entries = []
    for name in store.names():
        unloaded = store.is_unloaded(name)
        for version in store.versions(name):
            state, reason = ("UNAVAILABLE", "unloaded") if unloaded else ("READY", "")
            try:
                store.metadata(name, version)
            except (ModelUnavailable, ModelNotFound) as exc:
                state, reason = "UNAVAILABLE", exc.message
            if state == "READY" or not ready_only:
                entries.append({"name": name, "version": str(version), "state": state, "reason": reason})
    return entries


def unload(store: ModelStore, registry: ModelRegistry, name: str) -> None:
    """Stop serving ``name`` (every version) until it is loaded again; its files stay. The service's
    default model cannot be unloaded (409): requests that name no model would have none."""
    store.existing_versions(name)
    if name == store.default_model():
        raise Conflict(f"{name!r} is the service's default model; make another model the default first")
    with storage_errors(f"unloading {name!r}"):
        atomic_write(store.model_dir(name) / UNLOADED, b"")
    registry.forget_defaults()


def load(store: ModelStore, registry: ModelRegistry, name: str) -> dict[str, Any]:
    """Serve ``name`` again (after ``unload``); its default version must load and pass the test
    prediction. The default version's sidecar."""
    network, meta = store.load(name, None)
    problem = network.test_prediction()
    if problem:
        raise ModelFileError(f"{name} v{meta['version']} cannot serve: {problem}")
    with storage_errors(f"loading {name!r}"):
        (store.model_dir(name) / UNLOADED).unlink(missing_ok=True)
        fsync_dir(store.model_dir(name))
    registry.forget_defaults()
    return meta
