"""``backprop serve``, ``health`` and ``worker``."""

from __future__ import annotations

import argparse
import sys

from service.settings import Settings

SERVE_FLAGS = ("host", "port", "workers")  # each defaults to its BACKPROP_* variable


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import os

    from service.serve import prepare, serve

    given = {name: getattr(args, name) for name in SERVE_FLAGS if getattr(args, name) is not None}
    if given:
        # gunicorn and the training worker read their settings from the environment too.
        os.environ.update({f"BACKPROP_{name.upper()}": str(value) for name, value in given.items()})
        settings = settings.model_copy(update=given)
    plan = prepare(settings)  # refuse before announcing anything
    front = "nginx before gunicorn" if plan.nginx else "gunicorn alone (nginx is not installed)"
    grpc = f", gRPC on port {settings.grpc_port}" if settings.grpc_port else ""
    print(
        f"serving on {settings.local_url}{grpc}: {front}; model store {settings.model_store}", file=sys.stderr
    )
    return serve(settings, plan, worker=not args.no_worker)


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import Client

    ready, answer = Client(args.url or settings.local_url, timeout=args.timeout).readiness()
    print(answer, file=sys.stdout if ready else sys.stderr)
    return 0 if ready else 1


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from service.jobs.worker import run_worker

    run_worker(settings)
    return 0
