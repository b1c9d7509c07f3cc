"""The robustness summary: what the fault, fuzz and load tests did and saw, printed as one JSON
document after the run (a pytest plugin, loaded by ``tests/conftest.py``)."""

from __future__ import annotations

import json
from collections import Counter

import pytest


class Robustness:
    """What the fault, fuzz and load tests did and saw, printed as one JSON summary after the run."""

    def __init__(self) -> None:
        self.sections: dict[str, dict] = {}
        self.faults: Counter[str] = Counter()

    def fault(self, what: str) -> None:
        """Count a fault as it is injected (a real kill, stop, fill or restart)."""
        self.faults[what] += 1

    def record(self, section: str, **figures) -> None:
        self.sections[section] = figures

    def summary(self) -> dict:
        return {**self.sections, "faults_injected": dict(sorted(self.faults.items()))}


_ROBUSTNESS = pytest.StashKey[Robustness]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_ROBUSTNESS] = Robustness()


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    robustness = config.stash[_ROBUSTNESS]
    if robustness.sections or robustness.faults:
        terminalreporter.write_sep("-", "robustness summary")
        terminalreporter.write_line(json.dumps(robustness.summary(), indent=2))


@pytest.fixture(scope="session")
def robustness(request) -> Robustness:
    return request.config.stash[_ROBUSTNESS]
