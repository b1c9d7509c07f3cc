"""Cheap requests never wait behind expensive ones, through a real ``backprop serve``: the
benchmark's flood (16 clients of the costliest explanations, 8 of the costliest pictures) against
/predict and /healthz, with the figures the issue asked for."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_predict_and_health_keep_their_pace_under_a_flood_of_expensive_requests(shipped_store):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.cost_classes", "--duration", "6"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**_environment(), "BACKPROP_MODEL_STORE": str(shipped_store)},
        timeout=300,
        check=True,
    )
    result = json.loads(proc.stdout)
    figures = {
        key: result[key] for key in ("predict_throughput_flooded_over_idle", "predict_p99_flooded_over_idle")
    }
    assert result["predict_throughput_flooded_over_idle"] >= 0.7, figures
    assert result["predict_p99_flooded_over_idle"] < 3.0, figures
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


def _environment() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("BACKPROP_", "PROMETHEUS_"))}
