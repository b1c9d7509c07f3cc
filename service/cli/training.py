"""``backprop train``, ``gradcheck`` and ``evaluate``."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from service.cli.common import add_option_flags, load_data, options_given, store_of, writable_folder
from service.evaluation import same_data_or_refuse
from service.feedback.dataset import base_dataset
from service.nn import Callback
from service.nn.gradcheck import random_check
from service.reporters import JsonReporter, TerminalReporter, emit
from service.settings import Settings
from service.training import TrainingConfig, split_indices, train_and_save

GRADCHECK_TOLERANCE = 1e-6

# Flags that keep a short name of their own beside the one generated from the field.
TRAINING_FLAG_ALIASES = {"learning_rate": ("--lr",), "weight_init": ("--init",)}


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    add_option_flags(parser, TrainingConfig, TRAINING_FLAG_ALIASES)


def training_config(args: argparse.Namespace) -> TrainingConfig:
    """The flags given; the model's defaults for the rest."""
    return options_given(args, TrainingConfig)


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    config = training_config(args)
    store = store_of(args, settings)
    model_name = args.model or base_dataset(args.dataset)
    # A bad name or a store that cannot be written is said before the data loads and the model trains.
    writable_folder(store.model_dir(model_name), "a model")
    dataset = load_data(args, settings)
    if not args.json:
        # The folder can be a fallback (e.g. Debian's), so say which one was used.
        print(
            f"{dataset.info.name}: {len(dataset.train_y):,} training images from {dataset.source}",
            file=sys.stderr,
        )
    reporter: Callback = JsonReporter() if args.json else TerminalReporter(sys.stderr)
    try:
        meta, result = train_and_save(
            config, dataset, store, model_name, callback=reporter, make_default=args.set_default
        )
    finally:
        if isinstance(reporter, TerminalReporter):
            reporter.close()
    path = store.version_path(model_name, meta["version"], ".npz")
    summary = {
        "event": "done",
        "model": model_name,
        "version": meta["version"],
        "path": str(path),
        "default": args.set_default,
        "data": str(dataset.source),
        "seconds": round(result.seconds, 3),
        **{
            k: result.metrics[k]
            for k in (
                "validation_accuracy",
                "test_accuracy",
                "held_out_split",
                "held_out_samples",
                "held_out_accuracy",
            )
        },
    }
    if args.json:
        emit(summary)
    else:
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        accuracy = ", ".join(
            f"{k.replace('_', ' ')} {v:.4f}"
            for k, v in summary.items()
            if k in ("validation_accuracy", "test_accuracy") and v is not None
        )
        print(f"saved {model_name} v{meta['version']} to {path} ({accuracy}; {result.seconds:.1f}s)")
        if summary["held_out_split"] == "validation":
            print(
                f"no test split in {dataset.source}: the validation split"
                f" ({summary['held_out_samples']:,} images never trained on) stands in for it"
            )
    return 0


def cmd_gradcheck(args: argparse.Namespace, settings: Settings) -> int:
    rng = np.random.default_rng(args.seed)
    worst = 0.0
    for depth in (1, 2, 3):
        hidden = tuple(int(h) for h in rng.integers(3, 12, size=depth))
        for one_hot in (False, True):
            checks = random_check(rng, hidden=hidden, one_hot=one_hot)
            for check in checks:
                worst = max(worst, check.relative_error)
                if args.json:
                    emit(
                        {
                            "hidden": list(hidden),
                            "one_hot": one_hot,
                            "param": check.name,
                            "shape": list(check.shape),
                            "relative_error": check.relative_error,
                        }
                    )
                else:
                    targets = "one-hot" if one_hot else "labels"
                    print(
                        f"hidden {list(hidden)!s:12} {targets:8} {check.name:3} {str(check.shape):10}"
                        f" relative error {check.relative_error:.2e}"
                    )
    passed = worst < GRADCHECK_TOLERANCE
    if args.json:
        emit(
            {"event": "done", "max_relative_error": worst, "tolerance": GRADCHECK_TOLERANCE, "passed": passed}
        )
    else:
        verdict = "PASS" if passed else "FAIL"
        print(f"{verdict}: largest relative error {worst:.2e} (tolerance {GRADCHECK_TOLERANCE:g})")
    return 0 if passed else 1


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    store = store_of(args, settings)
    network, meta = store.load(args.model, args.version)
    args.dataset = args.dataset or meta.get("dataset", {}).get("name", "mnist")
    dataset = load_data(args, settings)
    if dataset.test_x is not None and not args.validation:
        split, x, y = "test", dataset.test_x, dataset.test_y
    else:
        # Rebuild the held-out split the model was trained without, from its recorded config.
        same_data_or_refuse(meta, dataset)
        config = TrainingConfig(**meta.get("training", {}))
        _, val_idx = split_indices(config, dataset.train_y)
        split, x, y = "validation", dataset.train_x[val_idx], dataset.train_y[val_idx]
    accuracy = network.accuracy(network.normalize(x), y)
    result = {
        "model": meta["name"],
        "version": meta["version"],
        "dataset": dataset.info.name,
        "split": split,
        "samples": int(len(y)),
        "accuracy": accuracy,
    }
    print(
        json.dumps(result)
        if args.json
        else f"{meta['name']} v{meta['version']}: {accuracy:.4f} accuracy"
        f" on {len(y)} {split} images of {dataset.info.name}"
    )
    return 0
