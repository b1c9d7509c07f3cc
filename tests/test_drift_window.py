"""The drift route's recent window: answers counted by the minute, summed over a window, forgotten
after it, and kept in memory when the metrics folder cannot hold them."""

import numpy as np

from service import drift
from service.drift_window import SLOT_SECONDS, SLOTS, AnswerWindows


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _pairs(labels: list[int], bucket: int = 5) -> np.ndarray:
    return np.array([[label, bucket] for label in labels])


def test_answers_count_in_the_windows_that_cover_their_minute(tmp_path):
    clock = Clock()
    windows = AnswerWindows(tmp_path, clock)
    windows.count("m", 1, 10, _pairs([3, 3, 7]), beyond=1)
    clock.now += 30 * 60
    windows.count("m", 1, 10, _pairs([1], bucket=0), beyond=0)
    recent = windows.counts("m", 1, 10, 60)
    assert recent["labels"].tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert recent["confidence"].tolist() == [1, 0, 0, 0, 0, 0] and recent["ood"].tolist() == [0]
    hour = windows.counts("m", 1, 10, 3600)
    assert hour["labels"].sum() == 4 and hour["labels"][3] == 2 and hour["ood"].tolist() == [1]
    assert hour["confidence"].tolist() == [1, 0, 0, 0, 0, 3]
    assert windows.counts("m", 2, 10, 3600)["labels"].sum() == 0  # another version
    assert windows.counts("other", 1, 10, 3600)["labels"].sum() == 0


def test_a_window_rounds_up_to_whole_minutes_and_old_minutes_are_forgotten(tmp_path):
    clock = Clock()
    clock.now = 600 * SLOT_SECONDS + 59  # the end of a minute
    windows = AnswerWindows(tmp_path, clock)
    windows.count("m", 1, 10, _pairs([5]), beyond=0)
    clock.now += 1  # the next minute
    assert windows.counts("m", 1, 10, 1)["labels"].sum() == 0  # the current minute only
    assert windows.counts("m", 1, 10, 61)["labels"].sum() == 1  # two minutes
    clock.now += SLOTS * SLOT_SECONDS  # a day later the same slot is reused
    assert windows.counts("m", 1, 10, SLOTS * SLOT_SECONDS)["labels"].sum() == 0
    windows.count("m", 1, 10, _pairs([2]), beyond=0)
    assert windows.counts("m", 1, 10, SLOTS * SLOT_SECONDS)["labels"].tolist() == [0, 0, 1] + [0] * 7


def test_the_counts_are_a_file_in_the_metrics_folder_or_else_in_memory(tmp_path):
    windows = AnswerWindows(tmp_path)
    windows.count("m", 4, 10, _pairs([0, 9]), beyond=2)
    (ring,) = (tmp_path / "drift" / "m" / "v4").glob("*.ring")
    assert ring.stat().st_size == SLOTS * (1 + 10 + len(drift.BUCKET_NAMES) + 1) * 8
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder would be")
    in_memory = AnswerWindows(blocked)
    in_memory.count("m", 4, 10, _pairs([0, 9]), beyond=2)
    assert in_memory.counts("m", 4, 10, 60)["ood"].tolist() == [2]
    assert AnswerWindows(None).counts("m", 4, 10, 60)["labels"].sum() == 0
