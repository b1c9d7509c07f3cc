"""The documentation stays true to the code: its tokens are ones the service accepts, its links
lead somewhere, and its configuration table names every setting with its default."""

import re
from pathlib import Path

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


def _shown(default) -> str:
    """A default as the configuration table writes it."""
    if default is None or default == ():
        return "unset"
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


def test_the_configuration_table_shows_each_settings_default():
    table = (REPO / "docs" / "operations.md").read_text().split("## Configuration", 1)[1]
    rows = [line.split("|") for line in table.splitlines() if line.startswith("| `BACKPROP_")]
    checked = 0
    for row in rows:
        names = re.findall(r"`BACKPROP_(\w+)`", row[1])
        defaults = [value.strip().strip("`") for value in row[3].split(",")]
        assert len(names) == len(defaults), row
        for name, shown in zip(names, defaults, strict=True):
            field = Settings.model_fields[name.lower()]
            default = field.default
            if isinstance(default, int | float) and not isinstance(default, bool):
                assert float(shown) == float(default), (name, shown, default)
            elif isinstance(default, Path):
                assert Path(shown) == default, (name, shown, default)
            else:
                assert shown == _shown(default), (name, shown, default)
            checked += 1
    assert checked == len(Settings.model_fields)
