"""Accuracy of ``backprop train`` with default settings, and the wall time it takes.

Runs the real command line (``backprop train --json``) on Fashion-MNIST (test split) and on the
mnist-5k subset (held-out 10%), into a temporary model store, and prints one JSON object with the
summaries, the wall-clock seconds of each run and the machine.

    python -m benchmarks.train_accuracy [--fashion-dir DIR] [--mnist5k-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import REPO, machine


def run_train(args: list[str], store: Path) -> dict:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "train", "--json", "--model-store", str(store), *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    wall = time.perf_counter() - started
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    summary = lines[-1]
    return {
        "command": "backprop train --json " + " ".join(args),
        "wall_seconds": round(wall, 2),
        "train_seconds": summary["seconds"],
        "epochs": len(lines) - 1,
        "validation_accuracy": summary["validation_accuracy"],
        "test_accuracy": summary["test_accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fashion-dir", default=os.environ.get("BACKPROP_DATA_DIR", "./data"))
    parser.add_argument("--mnist5k-dir", default=str(REPO.parent / "shared" / "data" / "mnist-5k"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        result = {
            "benchmark": "train_accuracy",
            "machine": machine(),
            "fashion_mnist": run_train(["--dataset", "fashion-mnist", "--data-dir", args.fashion_dir], store),
            "mnist_5k": run_train(["--dataset", "mnist", "--data-dir", args.mnist5k_dir], store),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
