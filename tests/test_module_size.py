"""Modules stay under 300 lines (DEVELOPERS.md): a module that grows past it is split by what its
parts do, not trimmed. protoc's generated modules are not written by hand and are not counted."""

from tests.conftest import REPO

LIMIT = 300
FOLDERS = ("service", "tests", "benchmarks", "scripts")


def test_every_module_is_under_300_lines():
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
