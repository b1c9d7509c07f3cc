"""A container engine for the tests: docker when a Docker engine answers, otherwise podman through
../shared/tools (the sandboxed machines of this project, where ``container-setup`` provides the
base image)."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_tracked_files


@functools.cache
def engine() -> tuple[str, ...]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True, check=False).returncode == 0:
        return (docker,)
    tools = REPO.parent / "shared" / "tools"
    if (tools / "podman").is_file():
        subprocess.run(
            ["bash", str(tools / "container-setup")], check=True, capture_output=True, timeout=1800
        )
        return (str(tools / "podman"),)
    pytest.fail("no container engine: install docker (or podman)")


def build(engine: tuple[str, ...], context: Path, tag: str) -> str:
    """Build ``context`` as ``tag`` (keeping HEALTHCHECK on podman, as docker does)."""
    command = [*engine, "build", "--network", "host", "-t", tag, str(context)]
    if "podman" in engine[0]:
        command[2:2] = ["--format", "docker"]
    subprocess.run(command, check=True, capture_output=True, timeout=1800)
    return tag


def context_with_local_models(target: Path) -> Path:
    """The repository's tracked files, and a model store with a user's own model and default in it,
    as a developer's folder has after following the README."""
    copy_tracked_files(target)
    (target / "model_store" / "mine").mkdir()
    (target / "model_store" / "mine" / "v1.npz").write_bytes(b"\0" * (8 << 20))
    (target / "model_store" / "DEFAULT").write_text("mine\n")
    return target
