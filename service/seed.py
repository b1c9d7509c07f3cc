"""The model this repository ships (``model_store/mnist/v1``, its sidecar says ``"seed": true``):
read-only for the store, and the one model tests, benchmarks and the image start from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def seed_files(root: Path) -> list[Path]:
    """The shipped seed's files under the store ``root`` (sidecars that say ``"seed": true`` and
    their ``.npz``), relative to it: what tests, benchmarks and the image use, whatever else the
    folder holds."""
    sidecars = [p for p in Path(root).glob("*/v*.json") if json.loads(p.read_text()).get("seed") is True]
    return sorted(q.relative_to(root) for p in sidecars for q in (p, p.with_suffix(".npz")))


def copy_seed(root: Path, target: Path) -> Path:
    """A new store at ``target`` holding exactly the seed of the store at ``root``."""
    for relative in seed_files(root):
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(root) / relative, target / relative)
    return target
