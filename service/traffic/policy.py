"""A model's traffic policy: its contract (``TrafficPolicy``, the body of ``PUT
/models/NAME/traffic``) and its file, ``ROOT/NAME/TRAFFIC`` beside the default pointer, written
atomically so that every worker and replica applies the same one within
``BACKPROP_DEFAULT_REFRESH_SECONDS`` and it survives restarts.

Each ``PUT`` starts a new ``revision`` (the verdict counts afresh); the automatic decisions
(a candidate leaving the split) keep the revision and add an event that says why.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from service.errors import BackpropError, Conflict, InvalidInput
from service.files import atomic_write, fsync_dir, storage_errors
from service.json_types import json_int
from service.store import MAX_VERSION, ModelStore

POLICY_FILE = "TRAFFIC"
EXAMPLES = "TRAFFIC.examples"  # disagreements kept for a person to look at, named by revision
MAX_EVENTS = 20
log = logging.getLogger(__name__)

VersionKey = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,9}$")]
# A header's name as HTTP defines one (a token), so that it can only ever name a header.
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")]


class Shadow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: json_int(ge=1, le=MAX_VERSION) = Field(description="the version that also answers")
    fraction: float = Field(1.0, gt=0, le=1, strict=True, description="the share of requests it also answers")


class TrafficPolicy(BaseModel):
    """Which version answers the requests that name none."""

    model_config = ConfigDict(extra="forbid")

    split: dict[VersionKey, json_int(ge=0, le=1_000_000)] = Field(
        min_length=1,
        max_length=16,
        description='versions and their weights, {"1": 90, "2": 10}; each must pass the test prediction',
        examples=[{"1": 90, "2": 10}],
    )
    sticky_header: HeaderName | None = Field(
        None,
        description="a request header (e.g. X-User-ID) whose value, hashed, picks the version: one caller "
        "always gets the same one; without it, or when a request lacks it, each request is drawn",
    )
    shadow: Shadow | None = Field(
        None, description="a version that also answers a fraction of requests, after the client's answer"
    )
    min_agreement: float = Field(
        0.9,
        ge=0,
        le=1,
        strict=True,
        description="a shadow that agrees with the answering version less often leaves the split",
    )
    max_error_rate: float = Field(
        0.05,
        ge=0,
        le=1,
        strict=True,
        description="a version of the split whose requests fail more often leaves it",
    )
    min_requests: json_int(ge=1, le=1_000_000) = Field(
        50, description="requests a version answers before it is judged"
    )

    def versions(self) -> set[int]:
        """The versions the policy names (the split's and the shadow's)."""
        return {int(v) for v in self.split} | ({self.shadow.version} if self.shadow else set())


class Event(BaseModel):
    at: str
    version: int
    kind: Literal["left_split", "disagrees"]
    reason: str


class StoredPolicy(TrafficPolicy):
    revision: str
    set_at: str
    events: list[Event] = []


def _path(store: ModelStore, name: str):
    return store.model_dir(name) / POLICY_FILE


def read(store: ModelStore, name: str) -> StoredPolicy | None:
    """The model's policy, or None (a damaged file is logged and ignored: the plain default)."""
    try:
        return StoredPolicy.model_validate_json(_path(store, name).read_bytes())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (ValidationError, OSError) as exc:
        log.warning("%s/%s is not a traffic policy (%s); using the plain default", name, POLICY_FILE, exc)
        return None


def versions_in_policy(store: ModelStore, name: str) -> set[int]:
    policy = read(store, name)
    return policy.versions() if policy else set()


def write(store: ModelStore, name: str, policy: TrafficPolicy) -> StoredPolicy:
    """Check every version of ``policy`` (it exists and passes the test prediction: else 422) and
    make it the model's policy, as a new revision."""
    default = store.default_version(name)
    # Checked here, not on the model: a schema cannot say it, so the document cannot promise it.
    if not any(policy.split.values()):
        raise InvalidInput.at(["split"], "the weights must not all be 0", "weights")
    # Requests that name no version are read as the default version's inputs: every version they
    # may reach must take the same inputs and give the same classes.
    shape = _io_shape(store.metadata(name, default)["spec"])
    for version in sorted(policy.versions()):
        where = ["split", str(version)] if str(version) in policy.split else ["shadow", "version"]
        try:
            network, _ = store.load(name, version)
        except BackpropError as exc:
            raise InvalidInput.at(where, f"cannot enter the policy: {exc.message}", "version") from None
        problem = network.test_prediction()
        if problem:
            raise InvalidInput.at(where, f"{name} v{version} fails its test prediction: {problem}", "version")
        if (theirs := _io_shape(network.spec.model_dump())) != shape:
            msg = f"cannot enter the policy: {name} v{version} takes {theirs}; the default v{default} {shape}"
            raise InvalidInput.at(where, msg, "version")
    stored = StoredPolicy(
        **policy.model_dump(),
        revision=secrets.token_hex(4),
        set_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    _save(store, name, stored)
    _forget_examples(store, name, keep=stored.revision)
    return stored


def _io_shape(spec: dict) -> str:
    return f"{spec['input_size']} inputs and {spec['num_classes']} classes"


def _forget_examples(store: ModelStore, name: str, keep: str | None = None) -> None:
    for path in (store.model_dir(name) / EXAMPLES).glob("*.json"):
        if keep is None or not path.name.startswith(f"{keep}-"):
            path.unlink(missing_ok=True)


def _save(store: ModelStore, name: str, stored: StoredPolicy) -> None:
    with storage_errors(f"setting the traffic policy of {name!r}"):
        atomic_write(_path(store, name), stored.model_dump_json(indent=2).encode())


def delete(store: ModelStore, name: str) -> None:
    """Back to the plain default."""
    store.existing_versions(name)
    _path(store, name).unlink(missing_ok=True)
    fsync_dir(store.model_dir(name))
    _forget_examples(store, name)


def refuse_deleting(store: ModelStore, name: str, version: int) -> None:
    """409 when ``version`` is in the model's policy."""
    if version in versions_in_policy(store, name):
        raise Conflict(f"{name} v{version} is in the model's traffic policy; change the policy first")


def decide(store: ModelStore, name: str, revision: str, version: int, kind: str, reason: str) -> bool:
    """Record a verdict on ``version`` (once per revision); with ``left_split`` the version
    leaves the split (the model's default version takes its weight if nothing else has any).
    False if the policy changed meanwhile or the decision was already made."""
    current = read(store, name)
    if current is None or current.revision != revision:
        return False
    if any(e.version == version for e in current.events):
        return False  # one verdict per version and revision
    split = dict(current.split)
    if kind == "left_split":
        split.pop(str(version), None)
        if not any(split.values()):
            split = {str(store.default_version(name)): 1}
    now = datetime.now(UTC).isoformat(timespec="seconds")
    event = Event(at=now, version=version, kind=kind, reason=reason)
    events = [*current.events, event][-MAX_EVENTS:]
    _save(store, name, current.model_copy(update={"split": split, "events": events}))
    log.warning("traffic of %s: v%s %s", name, version, reason)
    return True


__all__ = ["Shadow", "StoredPolicy", "TrafficPolicy"]
