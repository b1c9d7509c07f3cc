"""What tracing costs a one-image /predict: through ``backprop serve`` (nginx, 2 gunicorn workers)
with tracing off and with it on, sampling every request and exporting OTLP/HTTP to a sink this
script runs on loopback (a collector standing in for one elsewhere: it takes a little of this
machine too), in interleaved wrk runs at 1 and 8 connections, each side's best kept; and, in
process, what the off path adds to a request (the span that is a ``nullcontext``, timed against the
same call without it, interleaved). With ``--baseline REV``, a third side serves that commit's code
(a git worktree, the same environment) in the same interleaved runs: tracing off against the code
before it.

    python -m benchmarks.tracing_cost [--duration 5] [--rounds 3] [--calls 20000] [--baseline REV]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from benchmarks import REPO, best_microseconds, machine, shipped_store
from benchmarks.serving import JSON, sample_digits, served, wrk


class Sink(ThreadingHTTPServer):
    """Takes OTLP/HTTP exports and answers 200, counting their bytes."""

    def __init__(self) -> None:
        self.received = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                sink.received += len(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@contextlib.contextmanager
def worktree(revision: str, path: Path):
    """A checkout of ``revision`` at ``path`` for as long as it is used."""
    add = ["git", "worktree", "add", "--detach", str(path), revision]
    subprocess.run(add, cwd=REPO, check=True, capture_output=True)
    try:
        yield path
    finally:
        remove = ["git", "worktree", "remove", "--force", str(path)]
        subprocess.run(remove, cwd=REPO, check=False, capture_output=True)


def off_path_microseconds(repeats: int = 5, calls: int = 20_000) -> dict:
    """The classification step with tracing off (its span a ``nullcontext``) against the same step
    called without the span, interleaved: microseconds per call of each, best of ``repeats``."""
    from service.api import routing
    from service.app import build_state
    from service.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        state = build_state(Settings(model_store=shipped_store(Path(tmp) / "store"), state_dir=Path(tmp)))
        pixels = np.zeros((1, 784), np.uint8)
        sides = {
            "with_the_off_span": lambda: routing.classify(state, pixels, None, None),
            "without_it": lambda: routing._classify(state, pixels, None, None),
        }
        best = best_microseconds(sides, repeats, calls)
    return {**best, "added_us": best["with_the_off_span"] - best["without_it"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each side's best kept")
    parser.add_argument(
        "--calls", type=int, default=20_000, help="in-process calls per timing of the off path"
    )
    parser.add_argument("--baseline", help="a commit whose code is served beside, untraced, to compare with")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    sink = Sink()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKPROP_", "PROMETHEUS_", "OTEL_"))}
        env["BACKPROP_MODEL_STORE"] = str(shipped_store(work / "store"))
        traced = env | {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.server_address[1]}",
            "OTEL_TRACES_SAMPLER": "always_on",
        }
        body = work / "single.json"
        body.write_text(json.dumps({"pixels": sample_digits(1)[0].tolist()}))
        sides = ("off", "on") + (("baseline",) if args.baseline else ())
        runs: dict[str, list[dict]] = {f"{side}_{c}": [] for side in sides for c in (1, 8)}
        with contextlib.ExitStack() as stack:
            bases = {
                "off": stack.enter_context(served("service:create_app()", env, work))[0],
                "on": stack.enter_context(served("service:create_app()", traced, work))[0],
            }
            if args.baseline:
                code = stack.enter_context(worktree(args.baseline, work / "baseline"))
                bases["baseline"] = stack.enter_context(served("service:create_app()", env, work, code=code))[
                    0
                ]
            for _ in range(args.rounds):
                for connections in (1, 8):
                    for side, base in bases.items():
                        runs[f"{side}_{connections}"].append(
                            wrk(
                                f"{base}/predict",
                                [(body, JSON)],
                                duration=args.duration,
                                connections=connections,
                                workdir=work,
                            )
                        )
    best = {side: max(found, key=lambda r: r["requests_per_second"]) for side, found in runs.items()}
    figures = {
        side: {k: round(found[k], 3) for k in ("requests_per_second", "p50_ms", "p99_ms")}
        for side, found in best.items()
    }
    print(
        json.dumps(
            {
                "benchmark": "tracing_cost",
                "machine": machine(),
                "wrk": {"duration_s": args.duration, "rounds": args.rounds},
                "predict": figures,
                **{
                    f"throughput_ratio_on_over_off_{c}": best[f"on_{c}"]["requests_per_second"]
                    / best[f"off_{c}"]["requests_per_second"]
                    for c in (1, 8)
                },
                **{
                    f"p50_ratio_on_over_off_{c}": best[f"on_{c}"]["p50_ms"] / best[f"off_{c}"]["p50_ms"]
                    for c in (1, 8)
                },
                **(
                    {
                        "baseline": args.baseline,
                        **{
                            f"throughput_ratio_off_over_baseline_{c}": best[f"off_{c}"]["requests_per_second"]
                            / best[f"baseline_{c}"]["requests_per_second"]
                            for c in (1, 8)
                        },
                    }
                    if args.baseline
                    else {}
                ),
                "exported_bytes": sink.received,
                "off_path_in_process": off_path_microseconds(calls=args.calls),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
