"""What the commands share: the store and the data they were pointed at, bounded numbers."""

from __future__ import annotations

import argparse

from service.data import load_dataset
from service.settings import Settings
from service.store import ModelStore


def store_of(args: argparse.Namespace, settings: Settings) -> ModelStore:
    return ModelStore(args.model_store or settings.model_store)


def load_data(args: argparse.Namespace, settings: Settings):
    return load_dataset(
        args.dataset,
        args.data_dir or settings.data_dir,
        download=getattr(args, "download", False),
        mirrors=settings.dataset_mirrors or None,
    )


def bounded(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


count = bounded(1, 4096)
