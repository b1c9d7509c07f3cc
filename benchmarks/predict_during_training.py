"""/predict latency while a training job runs, against the same server idle.

Serves the service as ``backprop serve`` does (nginx, gunicorn and a training worker, default
settings) on a copy of the model store, measures single-image /predict with wrk while idle, then
while a long training job on mnist-5k runs (it is cancelled afterwards), and prints one JSON object
with both p99s and their ratio (target: at most 2).

    python -m benchmarks.predict_during_training [--duration 10] [--connections 4]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import requests

from benchmarks import REPO, machine, shipped_store
from benchmarks.serving import JSON, sample_digits, served, wrk
from service.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--mnist5k-dir", default=str(REPO.parent / "shared" / "data" / "mnist-5k"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shipped_store(work / "model_store")
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update(BACKPROP_MODEL_STORE=str(work / "model_store"), BACKPROP_DATA_DIR=args.mnist5k_dir)
        single = work / "single.json"
        single.write_text(json.dumps({"pixels": sample_digits(1)[0].tolist()}))
        run = {"duration": args.duration, "connections": args.connections, "workdir": work}
        with served("service:create_app()", env, work, worker=True) as (base, _):
            wrk(f"{base}/predict", [(single, JSON)], **{**run, "duration": 2})  # warm-up
            idle = wrk(f"{base}/predict", [(single, JSON)], **run)
            job = requests.post(f"{base}/train", json={"epochs": 500}, timeout=10).json()
            while requests.get(f"{base}/jobs/{job['id']}", timeout=5).json()["status"] == "queued":
                time.sleep(0.1)
            training = wrk(f"{base}/predict", [(single, JSON)], **run)
            after = requests.get(f"{base}/jobs/{job['id']}", timeout=5).json()
            requests.post(f"{base}/jobs/{job['id']}/cancel", timeout=5)
    print(
        json.dumps(
            {
                "benchmark": "predict_during_training",
                "machine": machine(),
                "front": Settings().front,
                "wrk": {"duration_s": args.duration, "connections": args.connections},
                "training_job": {
                    "status_at_end_of_measurement": after["status"],
                    "progress": after["progress"],
                },
                "idle": idle,
                "while_training": training,
                "p99_ratio_training_over_idle": training["p99_ms"] / idle["p99_ms"],
                "p50_ratio_training_over_idle": training["p50_ms"] / idle["p50_ms"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
