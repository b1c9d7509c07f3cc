"""The router: weights, sticky callers, shadows, and policies read again from the store."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from service.nn.network import MLP, ModelSpec
from service.store import ModelStore
from service.traffic import policy as policies
from service.traffic.policy import TrafficPolicy
from service.traffic.router import TrafficRouter
from tests.traffic import binomial_p_value

NO_HEADER = lambda _name: None  # noqa: E731


@pytest.fixture
def store(store_dir):
    store = ModelStore(store_dir)
    for seed in (1, 2):
        store.save("mnist", MLP.initialize(ModelSpec(hidden=(4,)), np.random.default_rng(seed)))
    return store


def _router(store, **policy) -> TrafficRouter:
    policies.write(store, "mnist", TrafficPolicy(**policy))
    return TrafficRouter(store, refresh_seconds=0, rng=random.Random(7))


def test_without_a_policy_the_default_answers(store):
    route = TrafficRouter(store).route("mnist", NO_HEADER)
    assert route.version is None and route.revision is None and route.shadow is None


def test_a_weighted_split_lands_within_binomial_bounds(store):
    router = _router(store, split={"1": 90, "2": 10, "3": 0})
    counts = Counter(router.route("mnist", NO_HEADER).version for _ in range(2000))
    assert set(counts) == {1, 2}  # a zero weight is never drawn
    assert binomial_p_value(counts[2], 2000, 0.1) > 0.001


def test_a_sticky_header_keeps_each_caller_on_one_version(store):
    router = _router(store, split={"1": 90, "2": 10}, sticky_header="X-User-ID")
    callers = {}
    for caller in range(200):
        seen = {router.route("mnist", {"X-User-ID": f"user-{caller}"}.get).version for _ in range(5)}
        assert len(seen) == 1
        callers[caller] = seen.pop()
    assert binomial_p_value(sum(v == 2 for v in callers.values()), 200, 0.1) > 0.001
    # A request without the header is drawn, as without stickiness.
    assert {router.route("mnist", NO_HEADER).version for _ in range(200)} == {1, 2}


def test_a_shadow_answers_its_fraction_and_never_the_version_that_answered(store):
    router = _router(store, split={"1": 50, "2": 50}, shadow={"version": 2, "fraction": 0.5})
    routes = [router.route("mnist", NO_HEADER) for _ in range(2000)]
    assert all(r.shadow is None for r in routes if r.version == 2)
    by_one = [r for r in routes if r.version == 1]
    assert binomial_p_value(sum(r.shadow == 2 for r in by_one), len(by_one), 0.5) > 0.001


def test_a_changed_policy_is_seen_after_the_refresh_interval(store):
    router = TrafficRouter(store, refresh_seconds=3600)
    assert router.route("mnist", NO_HEADER).revision is None
    policies.write(store, "mnist", TrafficPolicy(split={"2": 1}))
    assert router.route("mnist", NO_HEADER).revision is None  # cached for the interval
    router.forget()
    assert router.route("mnist", NO_HEADER).version == 2
    fresh = TrafficRouter(store, refresh_seconds=0)  # a restarted process reads the file
    assert fresh.route("mnist", NO_HEADER).version == 2


def test_a_damaged_policy_file_means_the_plain_default(store):
    (store.model_dir("mnist") / policies.POLICY_FILE).write_text("{not json")
    assert TrafficRouter(store).route("mnist", NO_HEADER).revision is None
