"""What counting drift (BACKPROP_DRIFT=1) costs a one-image classification, in process: the
service's classification step with drift off and on, in interleaved timings, on a version with a
drift reference. The metrics are in multiprocess mode with their folder, as under ``backprop
serve``: on, each answer is counted in the Prometheus counters and in the minute's slot of the drift
route's window (a memory-mapped file).

    python -m benchmarks.drift_cost [--calls 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from benchmarks import best_microseconds, machine, shipped_store
from benchmarks.serving import sample_digits


def microseconds(repeats: int, calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(Path(tmp, "metrics"))
        Path(tmp, "metrics").mkdir()
        from service import drift
        from service.api import routing
        from service.app import build_state
        from service.settings import Settings

        store = Path(tmp, "store")
        states = {
            side: build_state(Settings(model_store=shipped_store(store), state_dir=Path(tmp), drift=on))
            for side, on in (("off", False), ("on", True))
        }
        network, _ = states["on"].store.load("mnist", 1)
        digits = sample_digits(1000)
        reference = drift.reference(network.predict_proba(network.normalize(digits)))
        states["on"].store.save("mnist", network, {"drift_reference": reference})
        pixels = digits[:1]
        calls_of = {
            side: (lambda s=state: routing.classify(s, pixels, "mnist", 2)) for side, state in states.items()
        }
        best = best_microseconds(calls_of, repeats, calls)
        counted = states["on"].metrics.windows.counts("mnist", 2, 10, 3600)["labels"].sum()
    return {**best, "added_us": best["on"] - best["off"], "answers_counted_on": int(counted)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings of each side, interleaved")
    args = parser.parse_args()
    figures = microseconds(args.repeats, args.calls)
    print(json.dumps({"machine": machine(), "one_image_classification_us": figures}, indent=2))


if __name__ == "__main__":
    main()
