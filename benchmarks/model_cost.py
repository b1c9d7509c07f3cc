"""What serving one image costs with one default model against another (an ensemble's price).

Both stores' default models are served at once as ``backprop serve`` serves them (nginx before
gunicorn, no training worker); wrk sends one JSON image at a time over one connection, to each in
turn for ``--rounds`` interleaved rounds, so that the machine's slow moments fall on both; the
round with the lower p50 of each is kept. In this process, with one BLAS thread as a gunicorn
worker has, the forward pass of one image through each network is timed the same way. Prints one
JSON object with both and the ratios candidate / baseline.

    python -m benchmarks.model_cost --candidate STORE [--baseline STORE] [--duration 5] [--rounds 3]

The baseline defaults to the shipped model; ``git show REV:model_store/mnist/v1.npz`` (and its
``.json``) into a folder gives an earlier one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from benchmarks import best_microseconds, machine, shipped_store
from benchmarks.serving import JSON, sample_digits, served, wrk
from service.store import ModelStore


def forward_microseconds(networks: dict, image, repeats: int = 5, calls: int = 2000) -> dict[str, float]:
    """``image`` (1, 784) through each network, in turn, best of ``repeats``."""
    from threadpoolctl import threadpool_limits

    inputs = {side: network.normalize(image) for side, network in networks.items()}
    calls_by_side = {
        side: lambda network=network, x=inputs[side]: network.predict_proba(x.copy())
        for side, network in networks.items()
    }
    with threadpool_limits(limits=1, user_api="blas"):
        return best_microseconds(calls_by_side, repeats, calls)


def describe(meta: dict) -> dict:
    return {
        "model": f"{meta['name']} v{meta['version']}",
        "hidden": meta["spec"]["hidden"],
        "members": meta["training"].get("members", 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", type=Path, required=True, help="model store whose default is priced")
    parser.add_argument("--baseline", type=Path, help="model store to compare with (default: the shipped)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the lower p50 kept")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as running:
        work = Path(tmp)
        stores = {"baseline": args.baseline or shipped_store(work / "store"), "candidate": args.candidate}
        loaded = {side: ModelStore(store).load() for side, store in stores.items()}
        for network, _ in loaded.values():
            network.freeze()  # as the service's registry serves it
        image = sample_digits(1)
        single = work / "single.json"
        single.write_text(json.dumps({"pixels": image[0].tolist()}))
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        urls = {
            side: running.enter_context(
                served("service:create_app()", {**env, "BACKPROP_MODEL_STORE": str(store)}, work)
            )[0]
            for side, store in stores.items()
        }
        runs: dict[str, list[dict]] = {side: [] for side in stores}
        for _ in range(args.rounds):
            for side, url in urls.items():
                figures = wrk(
                    f"{url}/predict", [(single, JSON)], duration=args.duration, connections=1, workdir=work
                )
                runs[side].append(figures)
        kept = {side: min(found, key=lambda figures: figures["p50_ms"]) for side, found in runs.items()}
    forward = forward_microseconds({side: network for side, (network, _) in loaded.items()}, image)
    print(
        json.dumps(
            {
                "machine": machine(),
                "models": {side: describe(meta) for side, (_, meta) in loaded.items()},
                "forward_one_image_us": forward,
                "forward_ratio": forward["candidate"] / forward["baseline"],
                "served_one_image": kept,
                "p50_ratio": kept["candidate"]["p50_ms"] / kept["baseline"]["p50_ms"],
                "p99_ratio": kept["candidate"]["p99_ms"] / kept["baseline"]["p99_ms"],
                "rounds": args.rounds,
                "seconds_per_run": args.duration,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
