"""The ``backprop`` command line: train, gradcheck, evaluate, predict, explain."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import typing
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from service.data import DATASETS, load_dataset
from service.errors import BackpropError
from service.logs import configure as configure_logging
from service.nn import Callback
from service.nn.explain import DEFAULT_STEPS
from service.nn.gradcheck import random_check
from service.reporters import JsonReporter, TerminalReporter, emit
from service.settings import Settings
from service.store import ModelStore
from service.training import TrainingConfig, split_indices, train_and_save

GRADCHECK_TOLERANCE = 1e-6


def _store(args: argparse.Namespace, settings: Settings) -> ModelStore:
    return ModelStore(args.model_store or settings.model_store)


def _load_data(args: argparse.Namespace, settings: Settings):
    return load_dataset(
        args.dataset,
        args.data_dir or settings.data_dir,
        download=getattr(args, "download", False),
        mirrors=settings.dataset_mirrors or None,
    )


# Flags that keep a short name of their own beside the one generated from the field.
TRAINING_FLAG_ALIASES = {"learning_rate": ("--lr",), "weight_init": ("--init",)}


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``TrainingConfig`` field (``batch_size`` -> ``--batch-size``), whose type,
    choices, help and shown default come from the field: a new hyperparameter needs no edit here."""
    for name, field in TrainingConfig.model_fields.items():
        flags = [f"--{name.replace('_', '-')}", *TRAINING_FLAG_ALIASES.get(name, ())]
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
        else:
            options["type"] = float if field.annotation is float else int
        options["help"] = f"{field.description or name.replace('_', ' ')} (default {shown})"
        parser.add_argument(*flags, **options)


def training_config(args: argparse.Namespace) -> TrainingConfig:
    """The flags given; the model's defaults for the rest."""
    given = {name: getattr(args, name) for name in TrainingConfig.model_fields}
    return TrainingConfig(**{name: value for name, value in given.items() if value is not None})


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    config = training_config(args)
    store = _store(args, settings)
    model_name = args.model or args.dataset
    store.model_dir(model_name)  # fail on a bad name before loading the data, not after
    dataset = _load_data(args, settings)
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
    store = _store(args, settings)
    network, meta = store.load(args.model, args.version)
    args.dataset = args.dataset or meta.get("dataset", {}).get("name", "mnist")
    dataset = _load_data(args, settings)
    if dataset.test_x is not None and not args.validation:
        split, x, y = "test", dataset.test_x, dataset.test_y
    else:
        # Rebuild the held-out split the model was trained without, from its recorded config.
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


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
    from service.images import load_images

    pixels = load_images(args.file)
    if args.url:
        from service.client import ApiError, Client

        try:
            answer = Client(args.url).predict(pixels, model=args.model, version=args.version)
        except ApiError as exc:
            raise BackpropError(f"{args.url}: {exc.message}") from exc
        model, version = answer.model, answer.version
        probabilities = np.array(answer.probabilities)
        names = [str(i) for i in range(probabilities.shape[1])]
    else:
        network, meta = _store(args, settings).load(args.model, args.version)
        probabilities = network.predict_proba(network.normalize(pixels))
        model, version, names = meta["name"], meta["version"], network.spec.class_names
    for i, row in enumerate(probabilities):
        label = int(row.argmax())
        if args.json:
            emit(
                {
                    "index": i,
                    "label": label,
                    "class": names[label],
                    "probabilities": row.round(6).tolist(),
                    "model": model,
                    "version": version,
                }
            )
        else:
            print(f"{i}: {names[label]} ({row[label]:.1%}) [{model} v{version}]")
    return 0


def cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    from service.explaining import ExplainSettings, caption, explain_images
    from service.heatmap import heatmap_svg
    from service.images import load_images
    from service.registry import LoadedModel

    pixels = load_images(args.file)
    network, meta = _store(args, settings).load(args.model, args.version)
    model = LoadedModel(meta["name"], meta["version"], network, meta)
    how = ExplainSettings(
        method=args.method, target=args.target, steps=args.steps, samples=args.samples, seed=args.seed
    )
    for i, explanation in enumerate(explain_images(model, pixels, how)):
        svg_path = None
        if args.svg:
            svg_path = args.svg if len(pixels) == 1 else args.svg.with_stem(f"{args.svg.stem}-{i}")
            attributions = np.asarray(explanation["attributions"])
            svg_path.write_text(
                heatmap_svg(pixels[i], attributions, caption=caption(model, explanation, how.method))
            )
        if args.json:
            emit(
                {
                    "index": i,
                    "model": model.name,
                    "version": model.version,
                    "method": how.method,
                    **explanation,
                }
            )
            continue
        attributions = np.asarray(explanation["attributions"]).reshape(28, 28)
        row, col = np.unravel_index(np.abs(attributions).argmax(), attributions.shape)
        print(
            f"{i}: {caption(model, explanation, how.method)}; strongest pixel at row {row}, column {col}"
            + (f"; heat map in {svg_path}" if svg_path else "")
        )
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from service.serve import preflight, serve

    preflight(settings)  # refuse before announcing anything
    where = f"http://{settings.host}:{settings.port}"
    print(f"serving on {where} (model store {settings.model_store})", file=sys.stderr)
    return serve(settings, worker=not args.no_worker)


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    from service.serve import readiness

    ready, answer = readiness(settings, url=args.url, timeout=args.timeout)
    print(answer, file=sys.stdout if ready else sys.stderr)
    return 0 if ready else 1


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from service.jobs.queue import run_worker

    run_worker(settings)
    return 0


def _count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 4096:
        raise argparse.ArgumentTypeError(f"must be between 1 and 4096, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backprop", description="NumPy backprop digit classifier")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, *, data: bool = False, model: bool = False) -> None:
        p.add_argument("--json", action="store_true", help="print machine-readable JSON lines")
        p.add_argument("--model-store", type=Path, help="model store directory (env BACKPROP_MODEL_STORE)")
        if data:
            p.add_argument("--data-dir", type=Path, help="dataset root or IDX folder (env BACKPROP_DATA_DIR)")
            p.add_argument("--download", action="store_true", help="download the dataset if it is missing")
        if model:
            p.add_argument("--model", help="model name (default: the store's default model)")
            p.add_argument("--version", type=int, help="model version (default: the model's default)")

    t = sub.add_parser("train", help="train a model and save it as a new version in the store")
    common(t, data=True)
    t.add_argument("--dataset", default="mnist", choices=sorted(DATASETS))
    add_training_flags(t)
    t.add_argument("--model", help="name to save under (default: the dataset's name)")
    t.add_argument("--set-default", action="store_true", help="make the result the default model")
    t.set_defaults(handler=cmd_train)

    g = sub.add_parser("gradcheck", help="check backprop against numerical gradients (float64)")
    g.add_argument("--json", action="store_true")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(handler=cmd_gradcheck)

    e = sub.add_parser("evaluate", help="accuracy of a stored model on a dataset's test (or held-out) split")
    common(e, data=True, model=True)
    e.add_argument("--dataset", choices=sorted(DATASETS), help="default: the one the model was trained on")
    e.add_argument("--validation", action="store_true", help="use the held-out validation split")
    e.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser(
        "predict", help="classify a digit picture (PNG, JPEG, ...) or the images in a .npy file"
    )
    common(p, model=True)
    p.add_argument("file", help="a picture of one digit, or a .npy with one 28x28 / 784 image or N of them")
    p.add_argument(
        "--url", help="ask a running service (e.g. http://127.0.0.1:8000) instead of the local store"
    )
    p.set_defaults(handler=cmd_predict)

    x = sub.add_parser("explain", help="which pixels made the model say what it said (and a heat map)")
    common(x, model=True)
    x.add_argument("file", help="a picture of one digit, or a .npy with one 28x28 / 784 image or N of them")
    x.add_argument(
        "--method", choices=["integrated_gradients", "gradient", "smoothgrad"], default="integrated_gradients"
    )
    x.add_argument("--target", type=int, help="the class to explain (default: the predicted one)")
    x.add_argument("--steps", type=_count, default=DEFAULT_STEPS, help="integrated gradients' steps")
    x.add_argument("--samples", type=_count, default=32, help="smoothgrad's noisy copies")
    x.add_argument("--seed", type=int, default=0, help="smoothgrad's noise seed")
    x.add_argument("--svg", type=Path, help="write the heat map here (FILE-i.svg for several images)")
    x.set_defaults(handler=cmd_explain)

    s = sub.add_parser("serve", help="run the HTTP service (gunicorn) and a training worker")
    s.add_argument("--no-worker", action="store_true", help="no training worker (they run elsewhere)")
    s.set_defaults(handler=cmd_serve)

    h = sub.add_parser("health", help="exit 0 if the service answers /readyz (for container health checks)")
    h.add_argument("--url", help="service base URL (default: from BACKPROP_HOST and BACKPROP_PORT)")
    h.add_argument("--timeout", type=float, default=5.0)
    h.set_defaults(handler=cmd_health)

    w = sub.add_parser("worker", help="run a training worker on the job queue (BACKPROP_REDIS_URL or local)")
    w.set_defaults(handler=cmd_worker)
    return parser


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings or Settings()
        level = logging.INFO if args.verbose or args.command == "worker" else logging.WARNING
        configure_logging(level, settings.log_format)
        return args.handler(args, settings)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            print(f"backprop: invalid {field}: {error['msg']}", file=sys.stderr)
        return 2
    except BackpropError as exc:
        print(f"backprop: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
