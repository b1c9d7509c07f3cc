"""Configuration: read from ``BACKPROP_*`` environment variables into one typed object.

Code never reads the environment itself; it receives a ``Settings`` (tests build their own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BACKPROP_", extra="ignore", frozen=True)

    model_store: Path = Field(Path("./model_store"), description="model store directory")
    data_dir: Path = Field(Path("./data"), description="dataset root (torchvision layout or IDX folders)")
    dataset_mirrors: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="comma-separated base URLs tried instead of the standard dataset mirrors",
    )

    @field_validator("dataset_mirrors", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value
