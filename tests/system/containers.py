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


def build(engine: tuple[str, ...], context: Path, tag: str, *, nice: int = 0) -> str:
    """Build ``context`` as ``tag`` (keeping HEALTHCHECK on podman, as docker does), at ``nice``."""
    command = [*engine, "build", "--network", "host", "-t", tag, str(context)]
    if "podman" in engine[0]:
        command[2:2] = ["--format", "docker"]
    if nice:
        command[:0] = ["nice", "-n", str(nice)]
    subprocess.run(command, check=True, capture_output=True, timeout=1800)
    return tag


class BackgroundBuild:
    """The production image (``context_with_local_models``), built in a thread at a lower priority
    from the start of a run that will need it, so that the build overlaps the tests before the
    container tests instead of adding its minute to the run."""

    def __init__(self) -> None:
        import tempfile
        import threading
        import uuid

        self.folder = Path(tempfile.mkdtemp(prefix="backprop-image-"))
        self.tag = f"backprop-service:test-{uuid.uuid4().hex[:8]}"
        self.result: tuple[tuple[str, ...], str] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._build, name="image-build", daemon=True)
        self.thread.start()

    def _build(self) -> None:
        try:
            found = engine()
            self.result = (
                found,
                build(found, context_with_local_models(self.folder / "context"), self.tag, nice=10),
            )
        except BaseException as exc:  # noqa: BLE001 - pytest.fail's too: raised where the image is asked for
            self.error = exc

    def wait(self) -> tuple[tuple[str, ...], str]:
        """(engine, tag) once built; the build's error if it failed."""
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.result

    def remove(self) -> None:
        import shutil

        if self.result is not None:
            subprocess.run([*self.result[0], "rmi", "-f", self.tag], capture_output=True, check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def context_with_local_models(target: Path) -> Path:
    """The repository's tracked files, and a model store with a user's own model and default in it,
    as a developer's folder has after following the README."""
    copy_tracked_files(target)
    (target / "model_store" / "mine").mkdir()
    (target / "model_store" / "mine" / "v1.npz").write_bytes(b"\0" * (8 << 20))
    (target / "model_store" / "DEFAULT").write_text("mine\n")
    return target
