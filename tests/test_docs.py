"""The documentation stays true to the code: its tokens are ones the service accepts, its links
lead somewhere, and its configuration table names every setting."""

import re

import pytest
from pydantic import ValidationError

from service.settings import Settings
from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", [*PAGES, REPO / "Dockerfile", REPO / "compose.yaml"], ids=lambda p: p.name)
def test_every_token_shown_is_one_the_service_accepts(path):
    for token in re.findall(r"BACKPROP_API_TOKEN=([^\s$'\"`]+)", path.read_text()):
        if token == "...":  # a placeholder, not a token
            continue
        try:
            Settings(api_token=token)
        except ValidationError as exc:
            pytest.fail(f"{path.name}: BACKPROP_API_TOKEN={token} is refused: {exc}")


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file(path):
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)|src=\"([^\":]+)\"", path.read_text()):
        target = next(t for t in target if t)
        assert (path.parent / target).exists(), f"{path.name} links to {target}"


def test_the_configuration_table_names_every_setting():
    table = (REPO / "docs" / "operations.md").read_text().split("## Configuration", 1)[1]
    missing = [name for name in Settings.model_fields if f"`BACKPROP_{name.upper()}`" not in table]
    assert missing == []
