import json
import threading

import numpy as np
import pytest

from service.errors import InvalidModelName, ModelFileError, ModelNotFound
from service.nn import MLP, ModelSpec
from service.store import ModelStore


@pytest.fixture
def store(tmp_path):
    return ModelStore(tmp_path / "store")


def _net(seed=0):
    return MLP.initialize(ModelSpec(hidden=(8,)), np.random.default_rng(seed))


def test_versions_are_numbered_and_immutable(store):
    first = store.save("digits", _net(0), {"metrics": {"accuracy": 0.9}})
    second = store.save("digits", _net(1))
    assert (first["version"], second["version"]) == (1, 2)
    assert store.versions("digits") == [1, 2]
    assert store.metadata("digits", 1)["metrics"] == {"accuracy": 0.9}
    loaded, meta = store.load("digits", 1)
    np.testing.assert_array_equal(loaded.params["W1"], _net(0).params["W1"])
    assert meta["sha256"] == first["sha256"] and len(meta["sha256"]) == 64


def test_files_are_readable_by_other_users(store):
    store.save("digits", _net())
    store.set_default("digits")
    for path in [store.root / "DEFAULT", *(store.root / "digits").iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_sidecar_describes_the_file(store):
    meta = store.save("digits", _net())
    on_disk = json.loads((store.root / "digits" / "v1.json").read_text())
    assert on_disk == meta
    assert (
        on_disk["spec"]["hidden"] == [8]
        and on_disk["size_bytes"] == (store.root / "digits" / "v1.npz").stat().st_size
    )


def test_a_corrupted_file_fails_its_checksum(store):
    store.save("digits", _net())
    path = store.root / "digits" / "v1.npz"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256 does not match"):
        store.load("digits", 1)


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "UPPER", "x" * 65, "a..b", "/abs"])
def test_names_that_could_escape_or_confuse_are_refused(store, name):
    with pytest.raises(InvalidModelName):
        store.save(name, _net())


def test_defaults_per_model_and_service_wide(store):
    store.save("alpha", _net())
    store.save("beta", _net())
    store.save("beta", _net(1))
    assert store.resolve() == ("alpha", 1)  # no pointer yet: first name, newest version
    store.set_default("beta", 1)
    assert store.resolve() == ("beta", 1)
    assert store.resolve("beta") == ("beta", 1)
    assert store.resolve("beta", 2) == ("beta", 2)
    store.set_default("alpha", service_wide=False)
    assert store.resolve() == ("beta", 1)


def test_missing_models_and_versions(store):
    with pytest.raises(ModelNotFound, match="holds no models"):
        store.resolve()
    store.save("digits", _net())
    with pytest.raises(ModelNotFound, match="no model named 'other'"):
        store.load("other")
    with pytest.raises(ModelNotFound, match="has no version 7"):
        store.load("digits", 7)


def test_concurrent_writers_never_share_a_version(store):
    results = []

    def save(seed):
        results.append(store.save("digits", _net(seed))["version"])

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(1, 9))
    assert not [p for p in (store.root / "digits").iterdir() if p.name.startswith(".tmp")]


def test_a_version_without_its_sidecar_is_invisible(store):
    store.save("digits", _net())
    (store.root / "digits" / "v2.npz").write_bytes(b"partial")
    assert store.versions("digits") == [1]
    assert store.save("digits", _net())["version"] == 3  # v2 stays claimed


def test_non_finite_weights_are_never_saved_nor_made_default(tmp_path):
    import json

    import numpy as np

    from service.errors import ModelFileError
    from service.files import atomic_write, sha256_hex
    from service.nn import MLP, ModelSpec
    from service.nn.model_file import to_bytes
    from service.store import ModelStore

    store = ModelStore(tmp_path)
    network = MLP.initialize(ModelSpec(hidden=(4,)), np.random.default_rng(0))
    store.save("good", network)
    network.params["W1"][0, 0] = np.nan
    with pytest.raises(ModelFileError, match="NaN"):
        store.save("bad", network)
    assert not list(tmp_path.rglob("*bad*")) and not store.versions("bad")
    # A NaN file written past the store (by hand, an older version, ...) cannot become the default.
    data = to_bytes(network)
    atomic_write(store.version_path("good", 2, ".npz"), data)
    meta = {**store.metadata("good", 1), "version": 2, "sha256": sha256_hex(data)}
    atomic_write(store.version_path("good", 2, ".json"), json.dumps(meta).encode())
    with pytest.raises(ModelFileError):
        store.set_default("good", 2)
    assert store.default_version("good") == 2  # newest, but not made default by the pointer
    store.set_default("good", 1)
    assert store.default_version("good") == 1


def test_a_version_number_is_never_given_twice(store):
    for seed in range(3):
        store.save("m", _net(seed))
    store.set_default("m", 1)
    store.delete("m", 3)  # the newest
    assert store.save("m", _net(7))["version"] == 4
    store.delete("m", 2)
    store.delete("m", 4)
    assert store.save("m", _net(8))["version"] == 5
    store.set_default("m", 5)
    store.delete("m", 1)
    assert store.versions("m") == [5]
    tombstones = sorted(p.name for p in (store.root / "m").glob("*.deleted"))
    assert tombstones == ["v1.deleted", "v2.deleted", "v3.deleted", "v4.deleted"]


def test_deleting_every_version_keeps_the_numbers_taken(store):
    store.save("m", _net(0))
    store.save("other", _net(1))
    store.save("m", _net(2))
    store.set_default("m", 2)
    store.delete("m", 1)
    (store.root / "m" / "v2.json").unlink()  # as a delete of the last version would leave it
    (store.root / "m" / "v2.npz").unlink()
    (store.root / "m" / "v2.deleted").touch()
    assert "m" not in store.names()
    assert store.save("m", _net(3))["version"] == 3


def test_a_claim_on_a_number_deleted_meanwhile_moves_on(store):
    store.save("m", _net(0))
    (store.root / "m" / "v2.deleted").touch()  # a tombstone the listing might not have seen
    assert store.save("m", _net(1))["version"] == 3
    assert not (store.root / "m" / "v2.npz").exists()


def test_nothing_becomes_a_default_unless_asked(store):
    store.save("zeta", _net(0))
    store.save("zeta", _net(1))  # no pointer yet: v1 was the default, and stays it
    store.save("alpha", _net(2))  # sorts first: it would have become the service's default
    assert store.resolve() == ("zeta", 1)
    store.set_default("alpha")
    assert store.resolve() == ("alpha", 1)


def test_the_shipped_seed_is_read_only(shipped_store, tmp_path):
    import shutil

    from service.errors import Conflict

    store = ModelStore(shutil.copytree(shipped_store, tmp_path / "copy"))
    store.save("mnist", _net(0))
    store.set_default("mnist", 2)
    with pytest.raises(Conflict, match="mnist v1 is the model this service ships with"):
        store.delete("mnist", 1)
    assert store.versions("mnist") == [1, 2]
