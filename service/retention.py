"""How many versions of a model the store keeps: a per-model policy (``keep_latest``), kept in the
model's folder (``ROOT/NAME/RETENTION``, JSON) so that every worker and machine applies the same.

It is applied when a version lands (and when the policy is set): versions older than the newest
``keep_latest`` are deleted, as ``DELETE`` deletes them (their numbers stay taken), except the
model's default version, the shipped seed, the versions its traffic policy names and the versions
the caller protects (the one just added). No policy, the default, keeps every version.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.errors import BackpropError
from service.files import atomic_write, storage_errors
from service.json_types import json_int

if TYPE_CHECKING:
    from service.store import ModelStore

POLICY_FILE = "RETENTION"
log = logging.getLogger(__name__)


class RetentionPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep_latest: json_int(ge=1, le=100_000) | None = Field(
        None,
        description="versions to keep, newest first (the default version and the shipped seed are "
        "kept besides); null keeps every version",
    )


def read(store: ModelStore, name: str) -> RetentionPolicy:
    path = store.model_dir(name) / POLICY_FILE
    try:
        return RetentionPolicy.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return RetentionPolicy()
    except (ValidationError, OSError) as exc:
        log.warning("%s/%s is not a retention policy (%s); keeping every version", name, POLICY_FILE, exc)
        return RetentionPolicy()


def write(store: ModelStore, name: str, policy: RetentionPolicy) -> list[int]:
    """Set the policy of ``name`` and apply it; return the versions it deleted."""
    store.existing_versions(name)
    with storage_errors(f"setting the retention of {name!r}"):
        atomic_write(store.model_dir(name) / POLICY_FILE, json.dumps(policy.model_dump()).encode())
    return apply(store, name)


def apply(store: ModelStore, name: str, protected: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """Delete the versions of ``name`` beyond its policy; return their numbers."""
    keep = read(store, name).keep_latest
    versions = store.versions(name)
    if keep is None or len(versions) <= keep:
        return []
    from service.traffic.policy import versions_in_policy  # the policy module builds on the store

    spared = {store.default_version(name), *protected, *versions_in_policy(store, name)}
    deleted = []
    for version in versions[:-keep]:
        if version in spared:
            continue
        try:
            store.delete(name, version)
        except BackpropError as exc:  # the read-only seed, or deleted or made the default meanwhile
            log.info("retention kept %s v%s: %s", name, version, exc.message)
            continue
        deleted.append(version)
    if deleted:
        log.info("retention (keep_latest %s) deleted %s versions %s", keep, name, deleted)
    return deleted
