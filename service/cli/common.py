"""What the commands share: the store and the data they were pointed at, bounded numbers, and
flags generated from the option models."""

from __future__ import annotations

import argparse
import tempfile
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from service.errors import BackpropError
from service.feedback.dataset import load_training_data
from service.feedback.store import FeedbackStore
from service.files import make_folder
from service.settings import Settings
from service.store import ModelStore


def store_of(args: argparse.Namespace, settings: Settings) -> ModelStore:
    return ModelStore(args.model_store or settings.model_store)


def writable_folder(folder: Path, what: str, *, make: bool = True) -> Path:
    """``folder`` (made if absent and ``make``) once a file can be created in it, or one sentence:
    said before work whose result would otherwise be lost at the end (a training run, explanations)."""
    try:
        if make:
            make_folder(folder)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise BackpropError(f"cannot write {what} in {folder}: {exc.strerror or exc}") from None
    return folder


def write_file(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise BackpropError(f"cannot write {path}: {exc.strerror or exc}") from None


def load_data(args: argparse.Namespace, settings: Settings):
    data_dir = args.data_dir or settings.data_dir
    return load_training_data(
        args.dataset,
        data_dir,
        FeedbackStore.from_settings(settings.model_copy(update={"data_dir": data_dir})),
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


Options = TypeVar("Options", bound=BaseModel)


def add_option_flags(
    parser: argparse.ArgumentParser, model: type[BaseModel], aliases: dict[str, tuple[str, ...]] | None = None
) -> None:
    """One flag per field of ``model`` (``batch_size`` -> ``--batch-size``), whose type, choices,
    help and shown default come from the field: a new option needs no edit here."""
    for name, field in model.model_fields.items():
        flags = [f"--{name.replace('_', '-')}", *(aliases or {}).get(name, ())]
        options: dict[str, Any] = {"dest": name, "default": None}
        origin, shown = typing.get_origin(field.annotation), field.default
        if field.annotation is bool:
            options["action"] = argparse.BooleanOptionalAction
            shown = "on" if field.default else "off"
        elif origin is typing.Literal:
            options["choices"] = list(typing.get_args(field.annotation))
        elif origin is tuple:
            options.update(type=int, nargs="+", metavar="N")
            shown = " ".join(map(str, field.default))
        elif str in (field.annotation, *typing.get_args(field.annotation)):
            options["type"] = str
        else:
            options["type"] = float if field.annotation is float else int
        if shown is None:
            shown = "none"
        options["help"] = f"{field.description or name.replace('_', ' ')} (default {shown})"
        parser.add_argument(*flags, **options)


def options_given(args: argparse.Namespace, model: type[Options]) -> Options:
    """``model`` from the flags given; its defaults for the rest."""
    given = {name: getattr(args, name) for name in model.model_fields}
    return model(**{name: value for name, value in given.items() if value is not None})


def said_by_service(exc, url: str) -> BackpropError:
    """The one sentence for a ``service.client.ApiError``: what the service said, naming it, or
    that it could not be reached."""
    return BackpropError(exc.message if exc.status == 0 else f"{url}: {exc.message}")
