"""The Prometheus alert rules docs/operations.md gives for drift, as written there, checked and run
against made-up series by promtool (Debian's ``prometheus`` package): a version answering like its
held-out digits raises nothing; 3% of answers below its threshold is a watch, 10% pages."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DOCS = Path(__file__).parents[2] / "docs" / "operations.md"

TESTS = """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'backprop_drift_answers_total{model="mnist",version="1",label="3",confidence="le_1.0"}'
        values: '0+100x120'
      - series: 'backprop_drift_out_of_distribution_total{model="mnist",version="1"}'
        values: '0+1x120'
      - series: 'backprop_drift_answers_total{model="mnist",version="2",label="3",confidence="le_1.0"}'
        values: '0+100x120'
      - series: 'backprop_drift_out_of_distribution_total{model="mnist",version="2"}'
        values: '0+3x120'
      - series: 'backprop_drift_answers_total{model="mnist",version="3",label="3",confidence="le_1.0"}'
        values: '0+100x120'
      - series: 'backprop_drift_out_of_distribution_total{model="mnist",version="3"}'
        values: '0+10x120'
      - series: 'backprop_drift_answers_total{model="quiet",version="1",label="3",confidence="le_1.0"}'
        values: '0+1x120'
      - series: 'backprop_drift_out_of_distribution_total{model="quiet",version="1"}'
        values: '0+1x120'
    alert_rule_test:
      - eval_time: 90m
        alertname: BackpropOutOfDistributionWatch
        exp_alerts:
          - exp_labels: {severity: ticket, model: mnist, version: "2"}
          - exp_labels: {severity: ticket, model: mnist, version: "3"}
      - eval_time: 90m
        alertname: BackpropOutOfDistributionDrifting
        exp_alerts:
          - exp_labels: {severity: page, model: mnist, version: "3"}
            exp_annotations:
              summary: "mnist v3: 5x the held-out share of unfamiliar digits"
"""


def test_the_documented_drift_rules_alert_as_the_route_judges(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found: apt-get install prometheus")
    rules = re.search(r"```yaml\n(groups:.*?)```", DOCS.read_text(), re.S).group(1)
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "tests.yml").write_text(TESTS)
    checked = subprocess.run(
        [promtool, "check", "rules", "rules.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = subprocess.run(
        [promtool, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
