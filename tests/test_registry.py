import numpy as np
import pytest

from service.errors import ModelNotFound
from service.nn import MLP, ModelSpec
from service.registry import ModelRegistry
from service.store import ModelStore


def _net(seed):
    return MLP.initialize(ModelSpec(hidden=(4,)), np.random.default_rng(seed))


def test_a_version_is_loaded_once(tmp_path, monkeypatch):
    store = ModelStore(tmp_path)
    store.save("m", _net(0))
    registry = ModelRegistry(store)
    loads = []
    original = store.load
    monkeypatch.setattr(store, "load", lambda *a: loads.append(a) or original(*a))
    first = registry.get("m", 1)
    assert registry.get("m", 1) is first and registry.get() is first
    assert loads == [("m", 1)]


def test_another_process_changing_the_default_is_noticed(tmp_path):
    store = ModelStore(tmp_path)
    store.save("m", _net(0))
    store.save("m", _net(1))
    store.set_default("m", 1)
    worker = ModelRegistry(ModelStore(tmp_path), refresh_seconds=0)  # a second worker's view
    assert worker.get().version == 1
    store.set_default("m", 2)  # e.g. another gunicorn worker handling PUT /models/m/default
    assert worker.get().version == 2


def test_defaults_are_cached_for_the_refresh_interval(tmp_path):
    store = ModelStore(tmp_path)
    store.save("m", _net(0))
    store.save("m", _net(1))
    store.set_default("m", 1)
    worker = ModelRegistry(ModelStore(tmp_path), refresh_seconds=3600)
    assert worker.get().version == 1
    store.set_default("m", 2)
    assert worker.get().version == 1
    worker.forget_defaults()
    assert worker.get().version == 2


def test_deleted_versions_stop_answering(tmp_path):
    store = ModelStore(tmp_path)
    store.save("m", _net(0))
    store.save("m", _net(1))
    store.set_default("m", 2)
    registry = ModelRegistry(store)
    registry.get("m", 1)
    store.delete("m", 1)
    with pytest.raises(ModelNotFound):
        registry.get("m", 1)


def test_cache_is_bounded(tmp_path):
    store = ModelStore(tmp_path)
    for seed in range(4):
        store.save("m", _net(seed))
    registry = ModelRegistry(store, capacity=2)
    for version in (1, 2, 3, 4):
        registry.get("m", version)
    assert len(registry._models) == 2


def test_a_version_file_replaced_under_the_cache_is_loaded_afresh(tmp_path):
    import shutil

    store = ModelStore(tmp_path / "a")
    store.save("m", _net(0))
    other = ModelStore(tmp_path / "b")
    other.save("m", _net(1))
    registry = ModelRegistry(store, refresh_seconds=0)
    before = registry.get("m", 1)
    for suffix in (".npz", ".json"):  # another set of weights under the same number, by hand
        shutil.copy(other.version_path("m", 1, suffix), tmp_path / "new")
        (tmp_path / "new").replace(store.version_path("m", 1, suffix))
    after = registry.get("m", 1)
    assert after.metadata["sha256"] == other.metadata("m", 1)["sha256"] != before.metadata["sha256"]
    np.testing.assert_array_equal(after.network.params["W1"], _net(1).params["W1"])


def test_served_networks_are_frozen(tmp_path):
    store = ModelStore(tmp_path)
    store.save("m", _net(0))
    network = ModelRegistry(store).get("m", 1).network
    assert not any(value.flags.writeable for value in network.params.values())
