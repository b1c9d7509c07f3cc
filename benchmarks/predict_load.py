"""Load test of /predict and of the Open Inference Protocol's infer, with wrk, against a bare Flask
JSON echo served the same way.

Serves two apps as ``backprop serve`` does (nginx before gunicorn with ``service.gunicorn_conf``;
no training worker): the service, then benchmarks/echo_app.py. Drives each with wrk (Debian
package ``wrk``) and prints one JSON object: single-image throughput and p50/p99 latency for both,
their ratio, how the service's requests spread over its gunicorn workers; single images and
batches sent to /predict as JSON and as raw bytes, and to /v2/models/mnist/infer as
JSON and in the binary tensor data extension (as tritonclient sends them), with the ratio of v2
binary to raw bytes throughput. Batches (256 images by default) use the same connections.

Then the protocol over gRPC beside REST, driven by one load generator for both (h2load, Debian
package ``nghttp2-client``; ``benchmarks.h2load``) at 1 and 8 closed-loop callers: one image as gRPC
raw contents, as /predict raw bytes and as the REST infer's binary extension (p50, p99); and batches
(``--grpc-batch``, 1,000 images) as gRPC raw contents and in the REST binary extension (images per
second).

    python -m benchmarks.predict_load [--duration 5] [--connections 4] [--batch 256] [--grpc-batch 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import h2load, machine, shipped_store
from benchmarks.serving import JSON, RAW, free_port, requests_per_worker, sample_digits, served, spread, wrk


def v2_infer_body(images: np.ndarray, folder: Path, *, binary: bool) -> tuple[Path, dict[str, str]]:
    """An infer request for ``images`` (uint8) as a file, and its headers: JSON throughout, or
    binary both ways (what tritonclient sends by default)."""
    tensor = {"name": "pixels", "shape": list(images.shape), "datatype": "UINT8"}
    if not binary:
        body = json.dumps({"inputs": [{**tensor, "data": images.ravel().tolist()}]}).encode()
        headers = {"Content-Type": JSON}
    else:
        head = json.dumps(
            {
                "inputs": [{**tensor, "parameters": {"binary_data_size": images.size}}],
                "parameters": {"binary_data_output": True},
            }
        ).encode()
        body = head + images.astype(np.uint8).tobytes()
        headers = {"Content-Type": RAW, "Inference-Header-Content-Length": str(len(head))}
    path = folder / f"v2-{'binary' if binary else 'json'}-{len(images)}.bin"
    path.write_bytes(body)
    return path, headers


def best(runs: list[dict]) -> dict:
    return max(runs, key=lambda r: r["requests_per_second"])


def ratio(a: dict, b: dict) -> float:
    """a's throughput over b's."""
    return a["requests_per_second"] / b["requests_per_second"]


def grpc_beside_rest(
    base: str,
    grpc_target: str,
    digits: np.ndarray,
    *,
    seconds: int,
    rounds: int,
    callers: list[int],
    workdir: Path,
) -> dict:
    """gRPC and REST driven by one load generator (``benchmarks.h2load``) at each count of ``callers``, in
    interleaved rounds: each side's best p50 for one image, its best throughput for batches; and
    their ratios."""
    h2load.wait_for(grpc_target)
    one, batch = digits[:1], digits
    sides = {
        "single": {
            "grpc_raw": h2load.grpc_raw(grpc_target, one),
            "rest_predict_raw": h2load.rest_raw(base, one),
            "rest_v2_binary": h2load.rest_v2_binary(base, one),
        },
        "batch": {
            "grpc_raw": h2load.grpc_raw(grpc_target, batch),
            "rest_v2_binary": h2load.rest_v2_binary(base, batch),
        },
    }
    found: dict = {}
    for count in callers:
        for kind, calls in sides.items():
            runs: dict[str, list[dict]] = {side: [] for side in calls}
            for _ in range(rounds):
                for side, call in calls.items():
                    runs[side].append(
                        h2load.run(call, connections=count, seconds=seconds, workdir=workdir, base=base)
                    )
            if kind == "single":
                chosen = {side: min(r, key=lambda x: x["p50_ms"]) for side, r in runs.items()}
                for rest in ("rest_v2_binary", "rest_predict_raw"):  # the protocol's REST side; /predict
                    ratio_name = f"p50_ratio_grpc_over_{rest.removeprefix('rest_')}"
                    chosen[ratio_name] = chosen["grpc_raw"]["p50_ms"] / chosen[rest]["p50_ms"]
            else:
                chosen = {side: best(r) for side, r in runs.items()}
                for figures in chosen.values():
                    figures["images_per_second"] = figures["requests_per_second"] * len(batch)
                chosen["throughput_ratio_grpc_over_rest_binary"] = ratio(
                    chosen["grpc_raw"], chosen["rest_v2_binary"]
                )
            found.setdefault("1_caller" if count == 1 else f"{count}_callers", {})[kind] = chosen
    return {"tool": h2load.version(), "images_per_batch": len(batch), "seconds_per_run": seconds, **found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved echo/predict rounds; best kept")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--batch", type=int, default=256, help="images per batch request")
    parser.add_argument(
        "--grpc-batch", type=int, default=1000, help="images per batch in the gRPC comparison"
    )
    parser.add_argument(
        "--grpc-callers", type=int, nargs="+", default=[1, 8], help="caller counts of the gRPC comparison"
    )
    parser.add_argument(
        "--front", choices=["nginx", "none"], default="nginx", help="BACKPROP_FRONT of both servers"
    )
    args = parser.parse_args()
    for tool, package in (("wrk", "wrk"), ("h2load", "nghttp2-client")):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install {package}")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        env["BACKPROP_FRONT"] = args.front
        env["BACKPROP_MODEL_STORE"] = os.environ.get("BACKPROP_MODEL_STORE") or str(
            shipped_store(work / "store")
        )
        digits = sample_digits(args.batch)
        single = work / "single.json"
        single.write_text(json.dumps({"pixels": digits[0].tolist()}))
        single_raw = work / "single.bin"
        single_raw.write_bytes(digits[:1].tobytes())
        batch_json = work / "batch.json"
        batch_json.write_text(json.dumps({"instances": digits.tolist()}))
        batch_raw = work / "batch.bin"
        batch_raw.write_bytes(digits.tobytes())
        v2_single = {
            kind: v2_infer_body(digits[:1], work, binary=kind == "binary") for kind in ("json", "binary")
        }
        v2_batch = {kind: v2_infer_body(digits, work, binary=kind == "binary") for kind in ("json", "binary")}
        run = dict(duration=args.duration, workdir=work)

        grpc_port = free_port()
        with (
            served("benchmarks.echo_app:create_app()", env, work) as (echo_base, _),
            served("service:create_app()", env | {"BACKPROP_GRPC_PORT": str(grpc_port)}, work) as (
                base,
                metrics_dir,
            ),
        ):
            infer = f"{base}/v2/models/mnist/infer"
            # The machine's speed drifts: alternate short runs and keep each side's best. Every
            # run of the service is kept for its spread over the workers, the worst one reported.
            single_runs: dict[str, list[dict]] = {
                "echo": [],
                "predict": [],
                "raw_bytes": [],
                "v2_json": [],
                "v2_binary": [],
            }
            for _ in range(args.rounds):
                single_runs["echo"].append(
                    wrk(f"{echo_base}/echo", [(single, JSON)], connections=args.connections, **run)
                )
                before = requests_per_worker(metrics_dir)
                single_runs["predict"].append(
                    wrk(f"{base}/predict", [(single, JSON)], connections=args.connections, **run)
                )
                single_runs["predict"][-1]["workers"] = spread(before, requests_per_worker(metrics_dir))
                single_runs["raw_bytes"].append(
                    wrk(f"{base}/predict", [(single_raw, RAW)], connections=args.connections, **run)
                )
                for kind in ("json", "binary"):
                    single_runs[f"v2_{kind}"].append(
                        wrk(infer, [v2_single[kind]], connections=args.connections, **run)
                    )
            singles = {side: best(runs) for side, runs in single_runs.items()}
            worst_spread = max(r["workers"]["busiest_worker_share"] or 1.0 for r in single_runs["predict"])
            batches = {
                "json": wrk(f"{base}/predict", [(batch_json, JSON)], connections=args.connections, **run),
                "raw_bytes": wrk(f"{base}/predict", [(batch_raw, RAW)], connections=args.connections, **run),
                "v2_json": wrk(infer, [v2_batch["json"]], connections=args.connections, **run),
                "v2_binary": wrk(infer, [v2_batch["binary"]], connections=args.connections, **run),
            }
            grpc = grpc_beside_rest(
                base,
                f"127.0.0.1:{grpc_port}",
                sample_digits(args.grpc_batch),
                seconds=args.duration,
                rounds=args.rounds,
                callers=args.grpc_callers,
                workdir=work,
            )

    from service.settings import Settings

    settings = Settings(front=args.front)
    print(
        json.dumps(
            {
                "benchmark": "predict_load",
                "machine": machine(),
                "served_as": {
                    "front": args.front,
                    "gunicorn_workers": settings.workers,
                    "worker_class": settings.gunicorn_worker[0],
                    "threads": settings.gunicorn_worker[1],
                },
                "wrk": {"duration_s": args.duration, "connections": args.connections, "rounds": args.rounds},
                "single_image": {
                    **singles,
                    "throughput_ratio_predict_over_echo": ratio(singles["predict"], singles["echo"]),
                    "throughput_ratio_v2_json_over_echo": ratio(singles["v2_json"], singles["echo"]),
                    "p50_ratio_predict_over_echo": singles["predict"]["p50_ms"] / singles["echo"]["p50_ms"],
                    "p50_ratio_v2_json_over_echo": singles["v2_json"]["p50_ms"] / singles["echo"]["p50_ms"],
                    "throughput_ratio_v2_binary_over_raw_bytes": ratio(
                        singles["v2_binary"], singles["raw_bytes"]
                    ),
                    "throughput_ratio_v2_json_over_predict_json": ratio(
                        singles["v2_json"], singles["predict"]
                    ),
                    "busiest_worker_share_worst_round": worst_spread,
                },
                "batch": {
                    "images_per_request": args.batch,
                    **{
                        kind: {**figures, "images_per_second": figures["requests_per_second"] * args.batch}
                        for kind, figures in batches.items()
                    },
                    "throughput_ratio_v2_binary_over_raw_bytes": ratio(
                        batches["v2_binary"], batches["raw_bytes"]
                    ),
                    "throughput_ratio_v2_json_over_predict_json": ratio(batches["v2_json"], batches["json"]),
                },
                "grpc_beside_rest": grpc,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
