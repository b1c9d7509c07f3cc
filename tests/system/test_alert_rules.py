"""The Prometheus rules docs/operations.md gives for drift, as written there, checked and run by
promtool (Debian's ``prometheus`` package) against made-up series of four versions sharing one
reference: one answers like it (nothing fires), one has 3% of its answers below its threshold (a
watch), one answers a single label and one is unsure of everything (both page)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from service import drift

DOCS = Path(__file__).parents[2] / "docs" / "operations.md"
MINUTES = 120
PSI = "backprop:drift_labels_psi:1h"
# The reference: labels evenly, every answer in the most confident bucket.
REFERENCE = {"label": [0.1] * 10, "confidence": [0.0] * (len(drift.BUCKET_NAMES) - 1) + [1.0]}


def _answers(version: int, per_minute: dict[tuple[int, str], int], beyond: int) -> list[dict]:
    series = [
        {
            "series": f'backprop_drift_answers_total{{model="mnist",version="{version}",label="{label}",'
            f'confidence="{bucket}"}}',
            "values": f"0+{count}x{MINUTES}",
        }
        for (label, bucket), count in per_minute.items()
    ]
    series.append(
        {
            "series": f'backprop_drift_out_of_distribution_total{{model="mnist",version="{version}"}}',
            "values": f"0+{beyond}x{MINUTES}",
        }
    )
    for kind, shares in REFERENCE.items():
        bins = range(10) if kind == "label" else drift.BUCKET_NAMES
        series += [
            {
                "series": f'backprop_drift_reference_share{{model="mnist",version="{version}",kind="{kind}",'
                f'bin="{bin_name}"}}',
                "values": f"{share}x{MINUTES}",
            }
            for bin_name, share in zip(bins, shares, strict=True)
        ]
    return series


def _tests() -> dict:
    sure = drift.BUCKET_NAMES[-1]
    even = {(label, sure): 10 for label in range(10)}  # 100 answers a minute
    series = (
        _answers(1, even, beyond=1)  # as the reference
        + _answers(2, even, beyond=3)  # 3% unfamiliar: watch
        + _answers(3, {(7, sure): 100}, beyond=1)  # one label: PSI of labels far over 0.25
        + _answers(4, {(label, drift.BUCKET_NAMES[0]): 10 for label in range(10)}, beyond=1)  # unsure
    )

    def fired(severity: str, versions: list[int]) -> list[dict]:
        return [
            {
                "exp_labels": {"severity": severity, "model": "mnist", "version": str(v)},
                **(
                    {"exp_annotations": {"summary": f"mnist v{v} answers unlike its held-out digits"}}
                    if severity == "page"
                    else {}
                ),
            }
            for v in versions
        ]

    return {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                # The rules' PSI is the route's: service.drift.psi on the same counts.
                # (to 1e-9: PromQL sums in an order of its own, so the last digit may differ)
                "promql_expr_test": [
                    {
                        "expr": f'abs({PSI}{{version="{version}"}} - {expected!r}) < bool 1e-9',
                        "eval_time": "90m",
                        "exp_samples": [{"labels": f'{{model="mnist",version="{version}"}}', "value": 1}],
                    }
                    for version, expected in (
                        (1, drift.psi(REFERENCE["label"], np.full(10, 10.0))),
                        (3, drift.psi(REFERENCE["label"], np.array([0.0] * 7 + [100.0, 0.0, 0.0]))),
                    )
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "90m",
                        "alertname": "BackpropDriftWatch",
                        "exp_alerts": fired("ticket", [2, 3, 4]),
                    },
                    {
                        "eval_time": "90m",
                        "alertname": "BackpropDrifting",
                        "exp_alerts": fired("page", [3, 4]),
                    },
                ],
            }
        ],
    }


def test_the_documented_drift_rules_alert_as_the_route_judges(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found: apt-get install prometheus")
    rules = re.search(r"```yaml\n(groups:.*?)```", DOCS.read_text(), re.S).group(1)
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "tests.yml").write_text(json.dumps(_tests()))  # JSON is YAML
    for command in (["check", "rules", "rules.yml"], ["test", "rules", "tests.yml"]):
        ran = subprocess.run([promtool, *command], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stdout + ran.stderr
