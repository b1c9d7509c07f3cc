"""The ``backprop`` command line: train, gradcheck, evaluate, predict, explain, push, export, serve,
health, worker.

Every error a person can cause ends in one sentence on standard error, never a traceback."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import typing
from pathlib import Path

from pydantic import ValidationError

from service import __version__
from service.cli.common import add_option_flags, bounded
from service.cli.models import cmd_explain, cmd_predict
from service.cli.serving import cmd_health, cmd_serve, cmd_worker
from service.cli.training import (
    add_training_flags,
    cmd_evaluate,
    cmd_gradcheck,
    cmd_train,
    training_config,
)
from service.cli.transfer import cmd_export, cmd_push
from service.data import DATASETS
from service.errors import BackpropError
from service.explaining import ExplainOptions
from service.jobs.schemas import DatasetName
from service.logs import configure as configure_logging
from service.onnx_export import ExportOptions
from service.repository import UploadOptions
from service.settings import Settings, describe_errors

__all__ = ["build_parser", "main", "training_config"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backprop", description="NumPy backprop digit classifier")
    parser.add_argument("--version", action="version", version=f"backprop {__version__}")
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
    t.add_argument("--dataset", default="mnist", choices=typing.get_args(DatasetName))
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
    add_option_flags(x, ExplainOptions)
    x.add_argument("--svg", type=Path, help="write the heat map here (FILE-i.svg for several images)")
    x.set_defaults(handler=cmd_explain)

    u = sub.add_parser("push", help="upload a .npz model file to a running service as a new version")
    u.add_argument("file", help="the .npz model file (from backprop train's store, or export --npz)")
    u.add_argument("--model", required=True, help="the model to add a version to")
    u.add_argument("--url", help="the service (default: from BACKPROP_HOST and BACKPROP_PORT)")
    u.add_argument("--json", action="store_true", help="print the new version's metadata as JSON")
    add_option_flags(u, UploadOptions)
    u.set_defaults(handler=cmd_push)

    o = sub.add_parser("export", help="write a stored version as ONNX (--onnx) or as its .npz (--npz)")
    common(o)
    o.add_argument("target", help="NAME or NAME:VERSION (default version: the model's default)")
    o.add_argument("--onnx", type=Path, help="write the version as an ONNX model here")
    o.add_argument("--npz", type=Path, help="write the version's .npz model file here")
    o.add_argument("--url", help="take it from a running service instead of the local store")
    add_option_flags(o, ExportOptions)
    o.set_defaults(handler=cmd_export)

    s = sub.add_parser("serve", help="run the HTTP service (gunicorn) and a training worker")
    s.add_argument("--host", help="address to listen on (env BACKPROP_HOST, default 127.0.0.1)")
    s.add_argument("--port", type=bounded(1, 65535), help="port (env BACKPROP_PORT, default 8000)")
    s.add_argument(
        "--workers", type=bounded(1, 64), help="gunicorn workers (env BACKPROP_WORKERS, default 2)"
    )
    s.add_argument("--no-worker", action="store_true", help="no training worker (they run elsewhere)")
    s.set_defaults(handler=cmd_serve)

    h = sub.add_parser("health", help="exit 0 if the service answers /readyz (for container health checks)")
    h.add_argument("--url", help="service base URL (default: from BACKPROP_HOST and BACKPROP_PORT)")
    h.add_argument("--timeout", type=float, default=5.0)
    h.set_defaults(handler=cmd_health)

    w = sub.add_parser("worker", help="run a training worker on the job queue (BACKPROP_REDIS_URL or local)")
    w.set_defaults(handler=cmd_worker)
    return parser


STOPPED = {"train": "stopped; nothing saved"}  # what an interrupted command did not do


def _interrupt(signum: int, _frame) -> None:
    raise KeyboardInterrupt(signum)


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in ("serve", "worker"):  # those two stop gracefully on their own
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        settings = settings or Settings()
        level = logging.INFO if args.verbose or args.command == "worker" else logging.WARNING
        configure_logging(level, settings.log_format)
        return args.handler(args, settings)
    except ValidationError as exc:
        for line in describe_errors(exc):
            print(f"backprop: {line}", file=sys.stderr)
        return 2
    except BackpropError as exc:
        print(f"backprop: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        signum = exc.args[0] if exc.args else signal.SIGINT
        print(f"\nbackprop: {STOPPED.get(args.command, 'stopped')}", file=sys.stderr)
        return 128 + signum
