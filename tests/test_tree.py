"""Rules of the tree that no single test would notice breaking: modules stay under 300 lines
(DEVELOPERS.md), and the quick tier, which installs only the ``test`` extra, still collects."""

import ast

from tests.conftest import REPO
from tests.system.conftest import NEEDS

LIMIT = 300
FOLDERS = ("service", "tests", "benchmarks", "scripts")
DEV_ONLY = {"playwright", "schemathesis", "yaml"}  # in the dev extra, not the test extra


def test_every_module_is_under_300_lines():
    # protoc's generated modules are not written by hand and are not counted
    modules = [
        path for folder in FOLDERS for path in (REPO / folder).rglob("*.py") if "_pb2" not in path.name
    ]
    assert len(modules) > 100  # the folders were found
    long = {
        str(path.relative_to(REPO)): count
        for path in modules
        if (count := len(path.read_text().splitlines())) >= LIMIT
    }
    assert not long, long


def test_system_modules_that_import_dev_tools_are_left_out_of_the_quick_tier():
    importing = {}
    for path in (REPO / "tests" / "system").glob("test_*.py"):
        for node in ast.parse(path.read_text()).body:  # the module's own imports, not a test's
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for package in {name.split(".")[0] for name in names} & DEV_ONLY:
                importing[path.name] = package
    assert importing and importing == NEEDS
