"""The model store: named models with immutable, numbered versions in one directory.

Layout (the directory may be a volume shared by several machines)::

    ROOT/DEFAULT                  name of the service-wide default model
    ROOT/NAME/DEFAULT             default version of NAME (else its newest)
    ROOT/NAME/v3.npz              the model file (see service.nn.model_file)
    ROOT/NAME/v3.json             metadata sidecar: sha256 of the .npz, spec, metrics, ...

Every file is written to a temporary name, fsynced and then linked or renamed into place, so no
reader sees half a file. A version number is claimed by ``os.link``, which fails if the name
exists: two writers never get the same version. The sidecar is written after the ``.npz``, and
listings read sidecars only, so a version becomes visible only once complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from service.errors import Conflict, InvalidModelName, ModelFileError, ModelNotFound
from service.nn import model_file
from service.nn.network import MLP

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
ModelName = Annotated[str, Field(pattern=NAME_PATTERN, description="model name, e.g. mnist")]
_NAME_RE = re.compile(NAME_PATTERN)
_VERSION_RE = re.compile(r"^v([1-9][0-9]*)\.json$")


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise InvalidModelName(
            f"invalid model name {name!r}: use 1-64 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(folder: Path, data: bytes) -> Path:
    fd, name = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    # mkstemp creates 0600; workers and other machines may read the store as other users.
    os.fchmod(fd, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return Path(name)


def atomic_write(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` atomically; with ``exclusive``, fail if ``path`` exists."""
    tmp = _write_temp(path.parent, data)
    try:
        if exclusive:
            os.link(tmp, path)  # raises FileExistsError: the claim is atomic
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


class ModelStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- reading -----------------------------------------------------------------------------

    def model_dir(self, name: str) -> Path:
        return self.root / validate_name(name)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and _NAME_RE.match(p.name) and self.versions(p.name)
        )

    def version_path(self, name: str, version: int, suffix: str) -> Path:
        """Where a version's ``.npz`` (suffix ``".npz"``) or sidecar (``".json"``) lives."""
        return self.model_dir(name) / f"v{version}{suffix}"

    def has_version(self, name: str, version: int) -> bool:
        return self.version_path(name, version, ".json").is_file()

    def versions(self, name: str) -> list[int]:
        folder = self.model_dir(name)
        if not folder.is_dir():
            return []
        found = (_VERSION_RE.match(p.name) for p in folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def metadata(self, name: str, version: int) -> dict[str, Any]:
        try:
            return json.loads(self.version_path(name, version, ".json").read_text())
        except FileNotFoundError:
            raise ModelNotFound(f"model {name!r} has no version {version}") from None

    def default_version(self, name: str) -> int:
        versions = self.versions(name)
        if not versions:
            raise ModelNotFound(f"no model named {name!r}")
        pointer = self.model_dir(name) / "DEFAULT"
        if pointer.is_file():
            chosen = int(pointer.read_text().strip())
            if chosen in versions:
                return chosen
        return versions[-1]

    def default_model(self) -> str:
        pointer = self.root / "DEFAULT"
        if pointer.is_file():
            name = pointer.read_text().strip()
            if self.versions(name):
                return name
        names = self.names()
        if not names:
            raise ModelNotFound(f"the model store {self.root} holds no models")
        return names[0]

    def resolve(self, name: str | None = None, version: int | None = None) -> tuple[str, int]:
        """(name, version) after applying the service-wide and per-model defaults."""
        name = name or self.default_model()
        if version is None:
            return name, self.default_version(name)
        if not self.has_version(name, version):
            if not self.versions(name):
                raise ModelNotFound(f"no model named {name!r}")
            raise ModelNotFound(f"model {name!r} has no version {version}")
        return name, version

    def load(self, name: str | None = None, version: int | None = None) -> tuple[MLP, dict[str, Any]]:
        """The network and its metadata; the ``.npz`` must match the sidecar's sha256."""
        name, version = self.resolve(name, version)
        meta = self.metadata(name, version)
        path = self.version_path(name, version, ".npz")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelFileError(f"{path}: model file missing") from None
        if sha256_hex(data) != meta.get("sha256"):
            raise ModelFileError(f"{path}: sha256 does not match its metadata; the file is corrupt")
        return model_file.load(io.BytesIO(data)), meta

    # -- writing -----------------------------------------------------------------------------

    def save(self, name: str, network: MLP, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Store ``network`` as the next version of ``name``; return the sidecar written."""
        folder = self.model_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        data = model_file.to_bytes(network)
        version = (self.versions(name) or [0])[-1] + 1
        while True:
            try:
                atomic_write(self.version_path(name, version, ".npz"), data, exclusive=True)
                break
            except FileExistsError:
                version += 1
        meta = {
            **(metadata or {}),
            "name": name,
            "version": version,
            "sha256": sha256_hex(data),
            "size_bytes": len(data),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "spec": model_file.spec_dict(network),
        }
        sidecar = json.dumps(meta, indent=2).encode()
        atomic_write(self.version_path(name, version, ".json"), sidecar, exclusive=True)
        return meta

    def set_default(self, name: str, version: int | None = None, *, service_wide: bool = True) -> None:
        """Make ``version`` (default: newest) the default of ``name``, and ``name`` the service's."""
        if version is None:
            versions = self.versions(name)
            if not versions:
                raise ModelNotFound(f"no model named {name!r}")
            version = versions[-1]
        name, version = self.resolve(name, version)
        atomic_write(self.model_dir(name) / "DEFAULT", f"{version}\n".encode())
        if service_wide:
            atomic_write(self.root / "DEFAULT", f"{name}\n".encode())

    def delete(self, name: str, version: int) -> None:
        """Remove a version; the default version of a model cannot be removed (409)."""
        name, version = self.resolve(name, version)
        if version == self.default_version(name):
            raise Conflict(
                f"version {version} is the default of {name!r}; make another version the default first"
            )
        folder = self.model_dir(name)
        # The sidecar goes first: from then on no listing shows the version.
        self.version_path(name, version, ".json").unlink(missing_ok=True)
        self.version_path(name, version, ".npz").unlink(missing_ok=True)
        _fsync_dir(folder)
