"""The shared pace: every process mapping the file sees the gaps between all their requests."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

from service.traffic.pace import Pace


def test_processes_taking_turns_see_the_pace_of_all_their_requests(tmp_path):
    path = tmp_path / "shadow-pace"
    first, second = Pace(path, quiet=0.0015), Pace(path, quiet=0.0015)
    now = time.monotonic() - 1
    for request in range(40):  # 1 ms apart, taken in turn: each process's own share is 2 ms apart
        (first if request % 2 else second).ended(now + request * 0.001)
    assert not first.is_quiet() and not second.is_quiet()
    alone = Pace(quiet=0.0015)  # what one of them would see of its own requests
    for request in range(0, 40, 2):
        alone.ended(now + request * 0.001)
    assert alone.is_quiet()
    script = (
        "import sys, time; from pathlib import Path; from service.traffic.pace import Pace; "
        "pace = Pace(Path(sys.argv[1]), quiet=0.0015)\n"
        "for _ in range(10): time.sleep(0.01); pace.ended(time.monotonic())"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)  # another process, 10 ms apart
    assert first.is_quiet()  # seen here


def test_the_typical_gap_counts_not_the_mean(tmp_path):
    pace = Pace(tmp_path / "shadow-pace", quiet=0.002)
    assert not pace.is_quiet()  # nothing known yet
    now = 100.0
    for request in range(30):
        now += 0.010 if request % 10 == 9 else 0.001  # a stall of 10 ms now and then: mean 1.9 ms
        pace.ended(now)
        assert not pace.is_quiet(), request
    for request in range(8):  # clients that pause: every gap is long, and soon nearly all recent ones
        now += 0.005
        pace.ended(now)
        assert pace.is_quiet() == (request >= 6), request
    pace.ended(1.0)  # earlier than the last: the file was written before this clock began
    assert not pace.is_quiet()


def test_an_unusable_state_folder_leaves_each_process_its_own_pace(tmp_path, caplog):
    (tmp_path / "file").write_text("not a folder")
    with caplog.at_level(logging.WARNING):
        pace = Pace(tmp_path / "file" / "shadow-pace", quiet=0.002)
        pace.ended(10.0)
        pace.ended(10.25)
    assert pace.is_quiet()
    assert "keeps the pace of its own requests" in caplog.text
