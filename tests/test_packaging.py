"""What a fresh machine installs: every dependency bounded to versions known to work together."""

import re
import tomllib

from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _requirements() -> list[str]:
    project = PYPROJECT["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [r for r in project["dependencies"] + extras if not r.startswith("backprop-service")]


def test_every_dependency_has_an_upper_bound():
    # A fresh install resolves the newest allowed release: without a bound, a new major version
    # reaches newcomers (and CI) before anyone has run the suite on it (pytest 9 did).
    unbounded = [r for r in _requirements() if not re.search(r"<\s*\d", r)]
    assert unbounded == []


def test_the_test_command_resolves_the_newest_allowed_versions():
    script = (REPO / "scripts" / "test").read_text()
    assert "--upgrade --upgrade-strategy eager" in script


def test_the_licence_pyproject_names_ships():
    assert PYPROJECT["project"]["license"] == {"text": "MIT"}
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
