"""The verdict: figures equal to what the two versions give offline, disagreements kept, and
candidates that fail or disagree leave the split (the default never does)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from service.api.metrics import Metrics
from service.nn.network import MLP, ModelSpec
from service.registry import ModelRegistry
from service.store import ModelStore
from service.traffic import policy as policies
from service.traffic.policy import TrafficPolicy
from service.traffic.router import Route, TrafficRouter
from service.traffic.verdict import MAX_EXAMPLES, Verdicts


@pytest.fixture
def parts(shipped_store, tmp_path):
    import shutil

    root = shutil.copytree(shipped_store, tmp_path / "store")
    store = ModelStore(root)
    network, _ = store.load("mnist", 1)
    rng = np.random.default_rng(0)
    # A candidate close to the shipped model: it agrees on most digits, not all.
    noisy = MLP(
        network.spec, {k: v + rng.normal(0, 0.02, v.shape).astype(v.dtype) for k, v in network.params.items()}
    )
    store.save("mnist", noisy)
    registry = ModelRegistry(store, refresh_seconds=0)
    router = TrafficRouter(store, refresh_seconds=0, rng=random.Random(1))
    return store, registry, router, Verdicts(store, registry, router, Metrics())


def test_the_shadow_figures_equal_the_offline_comparison(parts, real_digits):
    store, registry, router, verdicts = parts
    stored = policies.write(
        store, "mnist", TrafficPolicy(split={"1": 1}, shadow={"version": 2}, min_agreement=0)
    )
    images = real_digits[0]
    ours = registry.get("mnist", 1).predict(images)
    theirs = registry.get("mnist", 2).predict(images)
    for start in range(0, len(images), 50):  # requests of 50 images
        route = router.route("mnist", lambda _: None)
        assert (route.version, route.shadow) == (1, 2)
        verdicts.answered(route, ours[start : start + 50])
        verdicts.shadow(route, 1, images[start : start + 50], ours[start : start + 50], False)
    figures = verdicts.figures("mnist", stored.revision)
    shadow = figures["2"]
    assert shadow["compared"] == len(images) and figures["1"]["images"] == len(images)
    assert shadow["agreement"] == pytest.approx((ours.argmax(1) == theirs.argmax(1)).mean(), abs=1e-6)
    assert shadow["mean_absolute_difference"] == pytest.approx(np.abs(ours - theirs).mean(), abs=1e-6)
    assert figures["1"]["mean_confidence"] == pytest.approx(ours.max(axis=1).mean(), abs=1e-6)
    examples = verdicts.examples("mnist", stored.revision)
    assert 1 <= len(examples) <= MAX_EXAMPLES
    for example in examples:
        assert len(example["pixels"]) == 784 and example["answered"]["label"] != example["shadow"]["label"]


def test_a_disagreeing_shadow_in_the_split_leaves_it(parts):
    store, registry, router, verdicts = parts
    store.save("mnist", MLP.initialize(ModelSpec(hidden=(4,)), np.random.default_rng(3)))  # v3: noise
    policies.write(
        store, "mnist", TrafficPolicy(split={"1": 1, "3": 1}, shadow={"version": 3}, min_requests=20)
    )
    pixels = np.random.default_rng(0).integers(0, 256, (1, 784)).astype(np.uint8)
    for _ in range(200):
        route = router.route("mnist", lambda _: None)
        answered = registry.get("mnist", route.version)
        probabilities = answered.predict(pixels)
        verdicts.answered(route, probabilities)
        if route.shadow:
            verdicts.shadow(route, route.version, pixels, probabilities, False)
    stored = policies.read(store, "mnist")
    assert stored.split == {"1": 1}
    (event,) = stored.events
    assert event.version == 3 and event.kind == "left_split" and "below the 90% asked" in event.reason


def test_a_failing_candidate_leaves_the_split_and_the_default_never_does(parts):
    store, registry, router, verdicts = parts
    stored = policies.write(store, "mnist", TrafficPolicy(split={"1": 1, "2": 1}, min_requests=10))
    for version in (1, 2):
        for _ in range(10):
            verdicts.failed(Route("mnist", version, None, stored.revision), version, "its file is corrupt")
    after = policies.read(store, "mnist")
    assert after.split == {"1": 1} and [e.version for e in after.events] == [2]
    assert "failed 10 of 10 requests (100%), over the 5% allowed" in after.events[0].reason
