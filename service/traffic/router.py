"""Which version answers a request that names none, under the model's traffic policy.

Policies are read from the store at most every ``refresh_seconds`` (like default pointers). A
sticky header's value is hashed (SHA-256) onto the weights, so a caller keeps its version while the
weights stay; other requests are drawn with this process's own random generator.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate

from service.store import ModelStore
from service.traffic import policy as policies
from service.traffic.policy import StoredPolicy

Header = Callable[[str], str | None]


@dataclass(frozen=True)
class Route:
    """The version to answer with (None: the model's default, no policy), the shadow that also
    answers (or None), and the policy's revision (None without a policy)."""

    name: str
    version: int | None
    shadow: int | None = None
    revision: str | None = None


class TrafficRouter:
    def __init__(self, store: ModelStore, *, refresh_seconds: float = 1.0, rng: random.Random | None = None):
        self.store = store
        self.refresh_seconds = refresh_seconds
        self.rng = rng or random.Random()
        self._policies: dict[str, tuple[float, StoredPolicy | None]] = {}
        self._lock = threading.Lock()

    def policy(self, name: str) -> StoredPolicy | None:
        now = time.monotonic()
        with self._lock:
            cached = self._policies.get(name)
        if cached is None or now - cached[0] >= self.refresh_seconds:
            cached = (now, policies.read(self.store, name))
            with self._lock:
                self._policies[name] = cached
        return cached[1]

    def forget(self) -> None:
        """Read policies again on the next request (after this process changed one)."""
        with self._lock:
            self._policies.clear()

    def route(self, name: str, header: Header) -> Route:
        policy = self.policy(name)
        if policy is None:
            return Route(name, None)
        versions = [int(v) for v in policy.split]
        bounds = list(accumulate(policy.split.values()))
        caller = header(policy.sticky_header) if policy.sticky_header else None
        if caller is not None:
            digest = hashlib.sha256(f"{name}\0{caller}".encode()).digest()
            point = int.from_bytes(digest[:8], "big") / 2**64 * bounds[-1]
        else:
            point = self.rng.random() * bounds[-1]
        version = versions[min(bisect_right(bounds, point), len(versions) - 1)]
        shadow, also = policy.shadow, None
        if shadow and shadow.version != version and self.rng.random() < shadow.fraction:
            also = shadow.version
        return Route(name, version, also, policy.revision)
