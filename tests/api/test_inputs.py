"""Request-body parsing at NumPy speed (service.api.inputs); the HTTP behaviour is in test_predict.py."""

import json

import numpy as np
import pytest

from service.api import inputs
from service.errors import InvalidInput


def _body(payload) -> bytes:
    return json.dumps(payload).encode()


def test_plain_numbers_skip_the_walk():
    payload = {"instances": [[1, 2.5] * 392], "model": "mnist", "version": None}
    outside = {"instances": 0, "model": "mnist", "version": None}
    assert not inputs.may_hide_non_numbers(_body(payload), outside)


@pytest.mark.parametrize("value", ["7", None, True, False])
def test_a_hidden_non_number_is_always_suspected(value):
    # Strings outside the arrays that spell quotes and literals as escapes cannot hide one inside.
    outside = {"model": '"true" null', "id": "\u0022"}
    payload = {**outside, "pixels": [0] * 783 + [value]}
    assert inputs.may_hide_non_numbers(_body(payload), {**outside, "pixels": 0})
    # Letters written as escapes bring their own "u" to the text.
    escaped = b'{"id": "\\u006c\\u0075", "pixels": [0, ' + _body(value) + b"]}"
    assert json.loads(escaped)["id"] == "lu"
    assert inputs.may_hide_non_numbers(escaped, {"id": "lu", "pixels": 0})


def test_integer_pixels_are_read_as_bytes_and_anything_else_as_numbers():
    assert inputs.numbers([[0, 255], [7, 8]]).dtype == np.uint8
    assert inputs.numbers([0, 256]).dtype == np.int64
    assert inputs.numbers([0, 1.5]).dtype == np.float64
    assert inputs.numbers([0, 2**70]).dtype == np.float64  # beyond int64: the range check names it
    for not_pixels in ([[1, 2], [3]], [[1, 2], 3], [1, "2"], [1, [2]], [1, {}], [1, 10**400]):
        assert inputs.numbers(not_pixels) is None, not_pixels


@pytest.mark.parametrize(
    ("row", "loc", "message"),
    [
        ([0] * 9 + [[1]] + [0] * 774, ["pixels", 9], "must be a number, got an array"),
        ([0] * 9 + [{}] + [0] * 774, ["pixels", 9], "must be a number, got an object"),
        ([0] * 783 + [10**400], ["pixels", 783], "beyond float range"),
        ([0] * 783, ["pixels"], "must hold exactly 784 numbers, got 783"),
    ],
)
def test_a_row_that_is_not_784_numbers_is_named(row, loc, message):
    with pytest.raises(InvalidInput, match=message) as info:
        inputs.to_matrix(row, "pixels", batch=False, max_batch=1)
    assert info.value.details[0]["loc"] == loc


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
    assert matrix.shape == (3, 784) and matrix.dtype == np.uint8
    inputs.check_range(matrix, "instances", batch=True, scale="pixel")
    with pytest.raises(
        InvalidInput, match=r"instances\[0\]\[1\]: must be between 0 and 1 .*need \"scale\": \"pixel\""
    ):
        inputs.check_range(matrix, "instances", batch=True, scale="unit")


def test_raw_bytes():
    assert inputs.from_bytes(bytes(784 * 2), max_batch=2).shape == (2, 784)
    with pytest.raises(InvalidInput, match="not a multiple of 784"):
        inputs.from_bytes(bytes(100), max_batch=2)
