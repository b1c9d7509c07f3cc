"""Model names: one rule, for the API's schema (``ModelName``), the store's folders and the forms."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from service.errors import InvalidModelName

# Letters, digits, '.', '_' and '-', starting with a letter or digit, never two dots in a row
# (written without look-ahead, so the OpenAPI document and Pydantic's regex engine share it).
NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9_-]|\.[a-z0-9_-])*\.?$"
NAME_MAX_LENGTH = 64
NAME_RULE = (  # the pattern in words: error messages and forms say this
    f"1-{NAME_MAX_LENGTH} lowercase letters, digits, '-', '_' or '.', starting with a letter or digit, "
    "with no '..'"
)
ModelName = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        min_length=1,
        max_length=NAME_MAX_LENGTH,
        description=f"model name, e.g. mnist: {NAME_RULE}",
    ),
]
_NAME_RE = re.compile(NAME_PATTERN)


def is_name(text: object) -> bool:
    """The one rule for model names, at the API (through ``ModelName``) and in the store."""
    return isinstance(text, str) and len(text) <= NAME_MAX_LENGTH and bool(_NAME_RE.match(text))


def validate_name(name: str) -> str:
    if not is_name(name):
        raise InvalidModelName(f"invalid model name {name!r}: use {NAME_RULE}")
    return name
