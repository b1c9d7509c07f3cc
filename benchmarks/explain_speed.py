"""How long explanations take: each method of ``POST /explain`` on the shipped model, per request of
one image and of the largest batch a request may hold, through the Flask app (no network).

Prints one JSON object: milliseconds per request and per image, best of ``--repeats``, beside a
``/predict`` of the same images, so the cost reads as a ratio on a noisy machine.

    python -m benchmarks.explain_speed [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks import REPO, machine, shipped_store
from service import create_app
from service.data import load_dataset
from service.settings import Settings

METHODS = {
    "gradient": {"method": "gradient"},
    "integrated_gradients": {"method": "integrated_gradients"},
    "smoothgrad": {"method": "smoothgrad"},
}


def best_ms(client, path: str, body: dict, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.post(path, json=body)
        best = min(best, time.perf_counter() - started)
        assert response.status_code == 200, response.get_json()
    return 1000 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = _measure(args, Settings(model_store=shipped_store(Path(tmp) / "store")))
    print(json.dumps(result, indent=2))


def _measure(args: argparse.Namespace, settings: Settings) -> dict:
    client = create_app(settings).test_client()
    images = load_dataset("mnist", REPO / "tests" / "fixtures" / "digits").train_x
    result: dict = {
        "benchmark": "explain_speed",
        "repeats": args.repeats,
        "machine": machine(),
    }
    for batch in (1, settings.explain_max_batch):
        instances = images[:batch].tolist()
        figures = {"predict": best_ms(client, "/predict", {"instances": instances}, args.repeats)}
        for name, options in METHODS.items():
            figures[name] = best_ms(client, "/explain", {"instances": instances, **options}, args.repeats)
        result[f"batch_{batch}"] = {
            name: {"ms_per_request": ms, "ms_per_image": ms / batch, "over_predict": ms / figures["predict"]}
            for name, ms in figures.items()
        }
    return result


if __name__ == "__main__":
    main()
