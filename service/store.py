"""The model store: named models with immutable, numbered versions in one directory.

Layout (the directory may be a volume shared by several machines)::

    ROOT/DEFAULT                  name of the service-wide default model
    ROOT/NAME/DEFAULT             default version of NAME (else its newest)
    ROOT/NAME/v3.npz              the model file (see service.nn.model_file)
    ROOT/NAME/v3.json             metadata sidecar: sha256 of the .npz, spec, metrics, ...
    ROOT/NAME/v2.deleted          a deleted version: its number stays taken

Every file is written to a temporary name, fsynced and then linked or renamed into place, so no
reader sees half a file. A version number is claimed by ``os.link``, which fails if the name
exists: two writers never get the same version. The sidecar is written after the ``.npz``, and
listings read sidecars only, so a version becomes visible only once complete.

A version number names one set of weights forever: a deleted version leaves its number behind
(``vN.deleted``, written before its files go), and a new version is numbered past every number
the model's folder shows. Nothing becomes a default unless asked: before a version is added, the
defaults that so far followed from there being no pointer (the newest version, the first model)
are written down. Versions whose sidecar says ``"seed": true`` (the model this repository ships)
are read-only: they are never deleted, so user work never changes the files git tracks.
"""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.errors import (
    Conflict,
    ModelFileError,
    ModelNotFound,
    ModelUnavailable,
)
from service.files import atomic_write, fsync_dir, sha256_hex, storage_errors
from service.names import NAME_PATTERN, ModelName, is_name, validate_name

__all__ = ["NAME_PATTERN", "MAX_VERSION", "ModelName", "ModelStore", "is_name", "validate_name"]
from service import retention
from service.nn import model_file
from service.nn.network import MLP

MAX_VERSION = 2**31 - 1  # far beyond any store; the bound keeps the documented integers finite
log = logging.getLogger(__name__)

UNLOADED = "UNLOADED"  # in a model's folder: unloaded through the protocol's repository extension
MAX_MODEL_BYTES = 512 << 20  # a model file larger than this is refused unread
_VERSION_RE = re.compile(r"^v([1-9][0-9]*)\.json$")
_TAKEN_RE = re.compile(r"^v([1-9][0-9]*)\.(?:json|npz|deleted)$")  # every number a version ever had


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
            p.name for p in self.root.iterdir() if is_name(p.name) and p.is_dir() and self.versions(p.name)
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

    def _inside(self, path: Path, what: str) -> Path:
        """``path``, unless a link leads it out of the store (then the version is unavailable)."""
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise ModelUnavailable(f"{what}: its file is a link that leads out of the model store")
        return path

    def metadata(self, name: str, version: int) -> dict[str, Any]:
        what = f"{name} v{version}"
        path = self.version_path(name, version, ".json")
        try:
            text = self._inside(path, what).read_text()
        except FileNotFoundError:
            raise ModelNotFound(f"model {name!r} has no version {version}") from None
        try:
            meta = json.loads(text)
        except ValueError:
            raise ModelUnavailable(f"{what}: its metadata file is not valid JSON") from None
        if not isinstance(meta, dict):
            raise ModelUnavailable(f"{what}: its metadata file is not a JSON object")
        return meta

    def _pointer(self, path: Path) -> str | None:
        """The text of a DEFAULT pointer file, or None when there is none (or it leads out)."""
        try:
            if path.is_symlink() and not path.resolve().is_relative_to(self.root.resolve()):
                log.warning("%s leads out of the model store; ignored", path.name)
                return None
            return path.read_text(errors="replace").strip()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def existing_versions(self, name: str) -> list[int]:
        """``versions(name)``, or ``ModelNotFound`` (404) when the model has none."""
        versions = self.versions(name)
        if not versions:
            raise ModelNotFound(f"no model named {name!r}")
        return versions

    def default_version(self, name: str) -> int:
        versions = self.existing_versions(name)
        text = self._pointer(self.model_dir(name) / "DEFAULT")
        if text is not None:
            if re.fullmatch(r"[0-9]{1,10}", text) and int(text) in versions:
                return int(text)
            log.warning("%s/DEFAULT names no version of it (%r); using the newest", name, text[:40])
        return versions[-1]

    def default_model(self) -> str:
        text = self._pointer(self.root / "DEFAULT")
        if text:
            if is_name(text) and self.versions(text):
                return text
            log.warning("the store's DEFAULT names no model (%r); using the first", text[:40])
        names = self.names()
        if not names:
            raise ModelNotFound(
                "the model store holds no models (set BACKPROP_MODEL_STORE, or --model-store, to its folder)"
            )
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

    def read_file(self, name: str, version: int) -> tuple[bytes, dict[str, Any]]:
        """A version's ``.npz`` bytes, checked against its sidecar's sha256, and that sidecar."""
        what = f"{name} v{version}"
        meta = self.metadata(name, version)
        path = self._inside(self.version_path(name, version, ".npz"), what)
        try:
            if path.stat().st_size > MAX_MODEL_BYTES:
                raise ModelUnavailable(f"{what}: its model file is larger than {MAX_MODEL_BYTES >> 20} MiB")
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelUnavailable(f"{what}: model file missing") from None
        if sha256_hex(data) != meta.get("sha256"):
            raise ModelUnavailable(f"{what}: sha256 does not match its metadata: the file is corrupt")
        return data, meta

    def load(self, name: str | None = None, version: int | None = None) -> tuple[MLP, dict[str, Any]]:
        """The network and its metadata; the ``.npz`` must match the sidecar's sha256."""
        name, version = self.resolve(name, version)
        data, meta = self.read_file(name, version)
        try:
            return model_file.load(io.BytesIO(data)), meta
        except ModelFileError as exc:
            message = exc.message.removeprefix("model file: ")
            raise ModelUnavailable(f"{name} v{version}: {message}") from exc

    def is_unloaded(self, name: str) -> bool:
        """The model was unloaded (``unload``): it serves nothing until loaded again."""
        return (self.model_dir(name) / UNLOADED).exists()

    # -- writing -----------------------------------------------------------------------------

    def save(self, name: str, network: MLP, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Store ``network`` as the next version of ``name``; return the sidecar written.

        A network that fails its test prediction (non-finite weights) is refused; on any failure
        (a full disk included) no file of the version is left behind."""
        return self._add(name, model_file.to_bytes(network), network, metadata, "training")

    def upload(self, name: str, data: bytes, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Store the ``.npz`` bytes ``data`` as the next version of ``name``, as they are, after
        verifying them as every load does (arrays only, headers checked against the spec before any
        data is read, finite weights) and running the test prediction; ``ModelFileError`` (422)
        names what failed."""
        validate_name(name)
        try:
            network = model_file.load(io.BytesIO(data))
        except ModelFileError as exc:
            raise ModelFileError(f"the uploaded file: {exc.message.removeprefix('model file: ')}") from exc
        return self._add(name, data, network, metadata, "upload")

    def _add(
        self, name: str, data: bytes, network: MLP, metadata: dict[str, Any] | None, source: str
    ) -> dict[str, Any]:
        problem = network.test_prediction()
        if problem:
            raise ModelFileError(f"refusing to save {name!r}: {problem}")
        folder = self.model_dir(name)
        with storage_errors(f"saving a version of {name!r}"):
            folder.mkdir(parents=True, exist_ok=True)
            self._pin_defaults(name)
            version = self._claim(name, data)
            meta = {
                **(metadata or {}),
                "name": name,
                "version": version,
                "source": source,
                "sha256": sha256_hex(data),
                "size_bytes": len(data),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "spec": model_file.spec_dict(network),
            }
            sidecar = json.dumps(meta, indent=2).encode()
            try:
                atomic_write(self.version_path(name, version, ".json"), sidecar, exclusive=True)
            except BaseException:
                self.version_path(name, version, ".npz").unlink(missing_ok=True)
                raise
        retention.apply(self, name, protected={version})
        return meta

    def _claim(self, name: str, data: bytes) -> int:
        """Link ``data`` in as the ``.npz`` of a version number no file of the model ever had."""
        folder = self.model_dir(name)
        version = max(
            (int(m.group(1)) for p in folder.iterdir() if (m := _TAKEN_RE.match(p.name))), default=0
        )
        while True:
            version += 1
            try:
                atomic_write(self.version_path(name, version, ".npz"), data, exclusive=True)
            except FileExistsError:
                continue
            # Deleted after this listing was read: the tombstone went down before its file went.
            if not self.version_path(name, version, ".deleted").exists():
                return version
            self.version_path(name, version, ".npz").unlink()

    def _pin_defaults(self, name: str) -> None:
        """Write down the defaults that follow from absent pointers, before a new version or model
        could change them."""
        if self._pointer(self.root / "DEFAULT") is None and self.names():
            atomic_write(self.root / "DEFAULT", f"{self.default_model()}\n".encode())
        pointer = self.model_dir(name) / "DEFAULT"
        if self._pointer(pointer) is None and self.versions(name):
            atomic_write(pointer, f"{self.default_version(name)}\n".encode())

    def set_default(self, name: str, version: int | None = None, *, service_wide: bool = True) -> None:
        """Make ``version`` (default: newest) the default of ``name``, and ``name`` the service's.

        The version must load and pass the test prediction ``/readyz`` runs, so a default can never
        be a model that cannot serve."""
        if version is None:
            version = self.existing_versions(name)[-1]
        name, version = self.resolve(name, version)
        network, _ = self.load(name, version)
        problem = network.test_prediction()
        if problem:
            raise ModelFileError(f"{name} v{version} cannot be the default: {problem}")
        with storage_errors(f"setting the default of {name!r}"):
            atomic_write(self.model_dir(name) / "DEFAULT", f"{version}\n".encode())
            if service_wide:
                atomic_write(self.root / "DEFAULT", f"{name}\n".encode())

    def delete(self, name: str, version: int) -> None:
        """Remove a version; the default version of a model, and the shipped seed, cannot be
        removed (409). Its number is never given to another version."""
        name, version = self.resolve(name, version)
        if version == self.default_version(name):
            raise Conflict(
                f"version {version} is the default of {name!r}; make another version the default first"
            )
        if self.metadata(name, version).get("seed") is True:
            raise Conflict(f"{name} v{version} is the model this service ships with, which is read-only")
        folder = self.model_dir(name)
        with storage_errors(f"deleting {name} v{version}"):
            atomic_write(self.version_path(name, version, ".deleted"), b"")
        # The sidecar goes first: from then on no listing shows the version.
        self.version_path(name, version, ".json").unlink(missing_ok=True)
        self.version_path(name, version, ".npz").unlink(missing_ok=True)
        fsync_dir(folder)
