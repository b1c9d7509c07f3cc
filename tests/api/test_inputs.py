"""Request-body parsing at NumPy speed (service.api.inputs); the HTTP behaviour is in test_predict.py."""

import json

import numpy as np
import pytest

from service.api import inputs
from service.errors import InvalidInput


def _body(payload) -> bytes:
    return json.dumps(payload).encode()


def test_plain_numbers_skip_the_type_scan():
    payload = {"instances": [[1, 2.5] * 392], "model": "mnist"}
    assert not inputs._needs_type_scan(_body(payload), payload)


@pytest.mark.parametrize("value", ["7", None, True])
def test_any_non_number_triggers_the_scan_and_is_found(value):
    row = [0] * 784
    row[9] = value
    with pytest.raises(InvalidInput) as info:
        inputs.parse_predict_json(_body({"instances": [[0] * 784, row]}))
    assert info.value.details[0]["loc"] == ["instances", 1, 9]


def test_a_false_alarm_costs_a_scan_but_passes():
    payload = inputs.parse_predict_json(_body({"pixels": [0] * 784, "version": None}))
    assert payload["version"] is None


def test_matrix_conversion_and_range():
    matrix = inputs.to_matrix([[0, 255] * 392] * 3, "instances", batch=True, max_batch=3)
    assert matrix.shape == (3, 784) and matrix.dtype == np.float64
    inputs.check_range(matrix, "instances", batch=True, scale="pixel")
    with pytest.raises(
        InvalidInput, match=r"instances\[0\]\[1\]: must be between 0 and 1 .*need \"scale\": \"pixel\""
    ):
        inputs.check_range(matrix, "instances", batch=True, scale="unit")


def test_raw_bytes():
    assert inputs.from_bytes(bytes(784 * 2), max_batch=2).shape == (2, 784)
    with pytest.raises(InvalidInput, match="not a multiple of 784"):
        inputs.from_bytes(bytes(100), max_batch=2)
