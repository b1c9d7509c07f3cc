"""The drift window across real processes: what a process counted is read by another through the
metrics folder, also after it exits; on a full disk the counts stay in memory and nothing crashes."""

import multiprocessing

import numpy as np
import pytest

from service.drift_window import AnswerWindows
from tests.system.processes import fill, small_disk

pytestmark = pytest.mark.slow


def _count_and_exit(folder: str, labels: list[int]) -> None:
    AnswerWindows(folder).count("m", 1, 10, np.array([[label, 5] for label in labels]), beyond=0)


def _run(folder, labels) -> int:
    process = multiprocessing.get_context("spawn").Process(target=_count_and_exit, args=(str(folder), labels))
    process.start()
    process.join(60)
    return process.exitcode


def test_every_process_reads_the_counts_of_the_others(tmp_path):
    assert _run(tmp_path, [1, 2]) == 0 and _run(tmp_path, [2]) == 0
    here = AnswerWindows(tmp_path)
    here.count("m", 1, 10, np.array([[9, 0]]), beyond=1)
    counts = here.counts("m", 1, 10, 3600)
    assert counts["labels"].tolist() == [0, 1, 2, 0, 0, 0, 0, 0, 0, 1]
    assert counts["confidence"].tolist() == [1, 0, 0, 0, 0, 3] and counts["ood"].tolist() == [1]


def test_a_full_disk_keeps_the_counts_in_memory(tmp_path):
    with small_disk(tmp_path / "small", 256) as folder:
        fill(folder)
        assert _run(folder, [4]) == 0  # no SIGBUS: the file's blocks were asked for first
        here = AnswerWindows(folder)
        here.count("m", 1, 10, np.array([[4, 5]]), beyond=0)
        assert here.counts("m", 1, 10, 60)["labels"][4] == 1
        assert not list((folder / "drift").rglob("*.ring"))  # nothing half-made is left
