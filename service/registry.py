"""Per-process cache of loaded models over the store (KServe's load / ready / predict lifecycle).

A version is immutable, so each worker process loads it once. Which version is the default can
change at any time (another worker or machine may set it), so the default is re-resolved from the
store's pointer files at most every ``refresh_seconds``. At the same pace a cached version's
sidecar is looked at again: a file that is not the one loaded (replaced by hand, restored from a
backup) is loaded afresh, and its sha256 checked, rather than served from memory.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.errors import InvalidInput, ModelFileError, ModelUnloaded
from service.nn.network import MLP
from service.store import ModelStore


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    network: MLP
    metadata: dict[str, Any]
    identity: tuple[int, ...] = field(default=(), compare=False)  # the sidecar's inode, mtime, size

    def predict(self, pixels: np.ndarray, *, unit_scale: bool = False) -> np.ndarray:
        """Pixels (N, input_size) -> class probabilities (N, num_classes), float32. Pixels of
        another width are the request's mistake (422): an uploaded model may take other inputs."""
        wanted = self.network.spec.input_size
        if pixels.shape[-1] != wanted:
            msg = f"hold {pixels.shape[-1]} values per image; {self.name} v{self.version} takes {wanted}"
            raise InvalidInput.at(["pixels"], msg, "shape")
        return self.network.predict_proba(self.network.normalize(pixels, unit_scale=unit_scale))


class ModelRegistry:
    def __init__(self, store: ModelStore, *, refresh_seconds: float = 1.0, capacity: int = 8) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self.capacity = capacity
        self._models: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._checked: dict[tuple[str, int], float] = {}
        self._defaults: dict[tuple[str | None, int | None], tuple[float, tuple[str, int]]] = {}
        self._unloaded: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def _resolve(self, name: str | None, version: int | None, *, pinned: bool = False) -> tuple[str, int]:
        if version is not None and not pinned:
            # One stat per request (in resolve), so deleted versions stop answering at once.
            return self.store.resolve(name or self._resolve(None, None)[0], version)
        now = time.monotonic()
        cached = self._defaults.get((name, version))
        if cached and now - cached[0] < self.refresh_seconds:
            return cached[1]
        resolved = self.store.resolve(name, version)
        self._defaults[(name, version)] = (now, resolved)
        return resolved

    def _refuse_unloaded(self, name: str) -> None:
        """Raise ``ModelUnloaded`` if ``name`` is unloaded (its marker looked at every refresh)."""
        now = time.monotonic()
        cached = self._unloaded.get(name)
        if cached is None or now - cached[0] >= self.refresh_seconds:
            cached = (now, self.store.is_unloaded(name))
            self._unloaded[name] = cached
        if cached[1]:
            raise ModelUnloaded(
                f"model {name!r} is unloaded; POST /v2/repository/models/{name}/load serves it again"
            )

    def _identity(self, key: tuple[str, int]) -> tuple[int, ...]:
        try:
            stat = self.store.version_path(*key, ".json").stat()
        except FileNotFoundError:
            return ()
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _still_current(self, key: tuple[str, int], model: LoadedModel) -> bool:
        now = time.monotonic()
        if now - self._checked.get(key, 0.0) < self.refresh_seconds:
            return True
        self._checked[key] = now
        return self._identity(key) == model.identity

    def get(
        self, name: str | None = None, version: int | None = None, *, pinned: bool = False
    ) -> LoadedModel:
        """The requested model (defaults applied), loading it on first use. A ``pinned`` version (one
        a traffic policy names, which cannot be deleted) is looked up like defaults, at most every
        ``refresh_seconds``, rather than on every request."""
        with self._lock:
            key = self._resolve(name, version, pinned=pinned)
            self._refuse_unloaded(key[0])
            model = self._models.get(key)
            if model is not None and self._still_current(key, model):
                self._models.move_to_end(key)
                return model
        identity = self._identity(key)  # before reading: a file replaced meanwhile is seen next time
        network, meta = self.store.load(*key)  # outside the lock: loading reads and hashes a file
        model = LoadedModel(key[0], key[1], network.freeze(), meta, identity)
        with self._lock:
            self._checked[key] = time.monotonic()
            self._models[key] = model
            while len(self._models) > self.capacity:
                self._checked.pop(self._models.popitem(last=False)[0], None)
        return model

    def default_model(self) -> str:
        """The service's default model (re-read at most every ``refresh_seconds``)."""
        with self._lock:
            return self._resolve(None, None)[0]

    def forget_defaults(self) -> None:
        """Re-read default pointers and unloaded markers on the next request (after this process
        changed them)."""
        with self._lock:
            self._defaults.clear()
            self._unloaded.clear()

    def ready(self, name: str | None = None, version: int | None = None) -> LoadedModel:
        """The requested model (defaults applied), after it passes its test prediction
        (``MLP.test_prediction``)."""
        model = self.get(name, version)
        problem = model.network.test_prediction()
        if problem:
            raise ModelFileError(f"model {model.name} v{model.version} failed its test prediction: {problem}")
        return model
