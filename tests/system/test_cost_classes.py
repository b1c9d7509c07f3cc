"""Cheap requests never wait behind expensive ones, through a real ``backprop serve``: the
benchmark's flood (16 clients of the costliest explanations, 8 of the costliest pictures) against
/predict and /healthz, with the figures the issue asked for."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


PACE = ("predict_throughput_flooded_over_idle", "predict_p99_flooded_over_idle")


def _pace_kept(result: dict) -> bool:
    return result[PACE[0]] >= 0.7 and result[PACE[1]] < 3.0


def test_predict_and_health_keep_their_pace_under_a_flood_of_expensive_requests(shipped_store):
    result = _measure(shipped_store)
    first = {key: result[key] for key in PACE}
    if not _pace_kept(result):
        # One 4 s p99 against an idle p99 of ~3 ms: a pause of the shared machine in one phase is
        # enough to miss. Measured again, a real regression misses again.
        result = _measure(shipped_store)
    figures = {"first": first, "again": {key: result[key] for key in PACE}}
    assert _pace_kept(result), figures
    assert result["healthz"]["max_ms"] < 1000, result["healthz"]
    probe = result["expensive_probe"]  # an expensive client at normal priority during the flood
    assert probe["refused"] > 0 and probe["refusal_max_ms"] < 100, probe
    flood = [result["expensive"][kind] for kind in ("explain", "picture")]
    # Expensive requests are served too (at the lowest priority, so few while /predict is flooded),
    # the rest refused with Retry-After; none time out, none get another answer.
    assert sum(got["answered"] for got in flood) > 0, flood
    for got in flood:
        assert got["refused"] > 0 and got["refusals_without_retry_after"] == 0, got
        assert got["timeouts_or_errors"] == 0 and not got["other_answers"], got
    assert all(result["targets"].values()), result["targets"]


def _measure(store) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.cost_classes", "--duration", "4"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**_environment(), "BACKPROP_MODEL_STORE": str(store)},
        timeout=300,
        check=True,
    )
    return json.loads(proc.stdout)


def _environment() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("BACKPROP_", "PROMETHEUS_"))}
