"""The feedback store: corrections by pixels or by a kept input's request id, a rate per client
address, a bound that refuses corrections and recycles kept inputs, relabelling, deleting, and the
counts and confusions."""

import numpy as np
import pytest

from service.errors import Conflict, ExampleNotFound, RateLimited, StorageFull
from service.feedback.store import FeedbackStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _store(tmp_path, clock=None, **bounds) -> FeedbackStore:
    return FeedbackStore(
        tmp_path, **{"max_examples": 100, "per_minute": 1000, **bounds}, clock=clock or Clock()
    )


def _image(value: int) -> np.ndarray:
    return np.full(784, value, dtype=np.uint8)


def test_a_correction_keeps_its_pixels_label_and_what_answered(tmp_path):
    store = _store(tmp_path)
    example = store.correct(_image(9), 7, "10.0.0.1", predicted=1, model="mnist", version=3)
    assert (
        example["label"] == 7
        and example["predicted"] == 1
        and (example["model"], example["version"])
        == (
            "mnist",
            3,
        )
    )
    assert store.get(example["id"], pixels=True)["pixels"] == [9] * 784
    ids, images, labels = store.labelled()
    assert ids.tolist() == [example["id"]] and images.shape == (1, 784) and labels.tolist() == [7]


def test_a_kept_input_is_corrected_by_its_request_id_once(tmp_path):
    store = _store(tmp_path)
    probabilities = np.eye(10)[[4, 2]]
    assert store.capture(np.stack([_image(1), _image(2)]), probabilities, "mnist", 1, "req-1")
    assert store.summary()["kept_inputs"] == 2 and store.labelled()[0].size == 0  # not training data yet
    example = store.correct_request("req-1", 1, 5, "10.0.0.1")
    assert example["predicted"] == 2 and example["label"] == 5 and example["probabilities"][2] == 1.0
    assert store.get(example["id"], pixels=True)["pixels"] == [2] * 784
    with pytest.raises(Conflict, match="already corrected"):
        store.correct_request("req-1", 1, 6, "10.0.0.1")
    with pytest.raises(ExampleNotFound, match="BACKPROP_CAPTURE_FRACTION"):
        store.correct_request("req-2", 0, 6, "10.0.0.1")
    summary = store.summary()
    assert summary["corrections"] == 1 and summary["kept_inputs"] == 1
    assert summary["per_label"][5] == 1 and summary["confusions"][2][5] == 1


def test_each_address_has_its_rate_per_minute(tmp_path):
    clock = Clock()
    store = _store(tmp_path, clock, per_minute=3)
    for _ in range(3):
        store.correct(_image(0), 1, "10.0.0.1")
        clock.now += 10
    with pytest.raises(RateLimited) as refused:
        store.correct(_image(0), 1, "10.0.0.1")
    assert refused.value.retry_after == 30 and "at most 3" in refused.value.message
    store.correct(_image(0), 1, "10.0.0.2")  # another address has its own
    clock.now += 31
    store.correct(_image(0), 1, "10.0.0.1")
    assert store.summary()["corrections"] == 5


def test_a_full_store_refuses_corrections_and_never_evicts_them(tmp_path):
    store = _store(tmp_path, max_examples=10)
    for label in range(10):
        store.correct(_image(label), label, f"10.0.0.{label}")
    with pytest.raises(StorageFull, match="BACKPROP_FEEDBACK_MAX_EXAMPLES"):
        store.correct(_image(0), 0, "10.0.0.99")
    assert not store.capture(_image(0)[None], np.eye(10)[[0]], "mnist", 1, "r")  # no room: not kept
    assert store.labelled()[2].tolist() == list(range(10))


def test_kept_inputs_take_at_most_half_and_recycle_the_oldest(tmp_path):
    store = _store(tmp_path, max_examples=10)
    for request in range(8):
        assert store.capture(_image(request)[None], np.eye(10)[[0]], "mnist", 1, f"r{request}")
    kept, total = store.list(limit=50, offset=0, corrected=False)
    assert total == 5 and [e["request_id"] for e in kept] == ["r7", "r6", "r5", "r4", "r3"]
    for label in range(5):
        store.correct(_image(label), label, "10.0.0.1")
    assert store.summary() | {"per_label": None, "confusions": None} == {
        "corrections": 5,
        "kept_inputs": 5,
        "max_examples": 10,
        "per_label": None,
        "confusions": None,
    }


def test_token_holders_relabel_and_delete(tmp_path):
    store = _store(tmp_path)
    store.capture(_image(3)[None], np.eye(10)[[3]], "mnist", 1, "r")
    (kept,), _ = store.list(limit=1, offset=0)
    assert store.relabel(kept["id"], 8)["label"] == 8  # a kept input becomes a correction
    assert store.labelled()[2].tolist() == [8]
    store.delete(kept["id"])
    with pytest.raises(ExampleNotFound):
        store.get(kept["id"])
    with pytest.raises(ExampleNotFound):
        store.relabel(kept["id"], 1)
    with pytest.raises(ExampleNotFound):
        store.delete(kept["id"])
    again = store.correct(_image(0), 0, "10.0.0.1")
    assert again["id"] > kept["id"]  # ids are never reused
