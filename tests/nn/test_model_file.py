import io
import json

import numpy as np
import pytest

from service.errors import ModelFileError
from service.nn import MLP, ModelSpec, Normalization, model_file


@pytest.fixture
def network():
    spec = ModelSpec(hidden=(16, 8), normalization=Normalization(mean=0.13, std=0.31))
    return MLP.initialize(spec, np.random.default_rng(0))


def _npz(**arrays) -> io.BytesIO:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    return buffer


def test_round_trip_gives_identical_predictions(network, tmp_path):
    path = tmp_path / "m.npz"
    model_file.save(network, path)
    loaded = model_file.load(path)
    pixels = np.random.default_rng(1).integers(0, 256, (20, 784))
    np.testing.assert_array_equal(
        loaded.predict_proba(loaded.normalize(pixels)), network.predict_proba(network.normalize(pixels))
    )
    assert loaded.spec == network.spec


def test_file_is_self_describing_with_plain_numpy(network, tmp_path):
    path = tmp_path / "m.npz"
    model_file.save(network, path)
    with np.load(path, allow_pickle=False) as archive:
        spec = json.loads(str(archive["spec"]))
        assert sorted(archive.files) == ["W1", "W2", "W3", "b1", "b2", "b3", "spec"]
        assert archive["W1"].shape == (784, 16)
    assert spec["hidden"] == [16, 8]
    assert spec["normalization"] == {"pixel_max": 255.0, "mean": 0.13, "std": 0.31}


def test_missing_array_is_refused(network):
    arrays = {"spec": np.array(network.spec.model_dump_json()), **network.params}
    del arrays["b2"]
    with pytest.raises(ModelFileError, match=r"missing \['b2'\]"):
        model_file.load(_npz(**arrays))


def test_wrong_shape_is_refused(network):
    arrays = {"spec": np.array(network.spec.model_dump_json()), **network.params}
    arrays["W2"] = np.zeros((16, 9), dtype=np.float32)
    with pytest.raises(ModelFileError, match=r"W2 has shape \(16, 9\), the spec needs \(16, 8\)"):
        model_file.load(_npz(**arrays))


def test_extra_array_non_float_and_nan_are_refused(network):
    base = {"spec": np.array(network.spec.model_dump_json()), **network.params}
    with pytest.raises(ModelFileError, match="unexpected"):
        model_file.load(_npz(**base, W9=np.zeros(1)))
    with pytest.raises(ModelFileError, match="dtype"):
        model_file.load(_npz(**{**base, "b1": np.zeros(16, dtype=np.int32)}))
    with pytest.raises(ModelFileError, match="NaN"):
        model_file.load(_npz(**{**base, "b1": np.full(16, np.nan, dtype=np.float32)}))


def test_missing_or_invalid_spec_and_garbage_are_refused(network):
    with pytest.raises(ModelFileError, match="no 'spec'"):
        model_file.load(_npz(**network.params))
    with pytest.raises(ModelFileError, match="invalid spec"):
        model_file.load(_npz(spec=np.array('{"format": "other"}'), **network.params))
    with pytest.raises(ModelFileError, match="not a readable"):
        model_file.load(io.BytesIO(b"not a zip file"))


def test_pickled_arrays_are_never_loaded(network):
    arrays = {"spec": np.array(network.spec.model_dump_json()), **network.params}
    arrays["W1"] = np.array([object()], dtype=object)
    with pytest.raises(ModelFileError):
        model_file.load(_npz(**arrays))
