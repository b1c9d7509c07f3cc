"""What a shadow costs the client: one-image /predict latency through backprop serve with no
traffic policy, with a policy that only splits, and with a shadow answering every request too
(fraction 1.0); and whether any answer changed. Each round runs wrk once per side, in a fresh random
order; a side's figures are its median round's, and each ratio is the median of the rounds' own
ratios, with their quartiles: on this noisy machine two sides of one round compare like with like,
and one lucky or unlucky round moves no figure.

For reference, a fourth side has no policy but a process beside the service doing what a shadow
adds, less of it: matrix products of the model's size in 5 ms bursts every 50 ms, at the lowest
scheduling priority (SCHED_IDLE). What it costs is what this machine charges for any work done
beside the requests, wherever it runs.

    python -m benchmarks.traffic_shadow [--duration 3] [--rounds 12] [--connections 1] [--pause-ms 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

from benchmarks import machine, shipped_store
from benchmarks.serving import JSON, sample_digits, served, wrk
from service.traffic.shadow import INTERVAL_S

POLICIES = {
    "no_policy": None,
    "idle_priority_work_beside": None,
    "split_only": {"split": {"1": 1}},
    "shadow_everything": {"split": {"1": 1}, "shadow": {"version": 2, "fraction": 1.0}, "min_agreement": 0},
}
BLAS_ALONE = {"OPENBLAS_NUM_THREADS": "1"}
BACKGROUND = """
import os, time
import numpy as np
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
images, weights = np.ones((64, 784)), np.ones((784, 512))
while True:
    started = time.monotonic()
    while time.monotonic() - started < 0.005:
        images @ weights
    time.sleep(0.045)
"""


def noisy_copy(store: Path):
    """The shipped model (mnist v1) with a little noise on its weights: it agrees with it on most
    digits, not all."""
    from service.nn.network import MLP
    from service.store import ModelStore

    network, _ = ModelStore(store).load("mnist", 1)
    rng = np.random.default_rng(0)
    noise = {k: v + rng.normal(0, 0.02, v.shape).astype(v.dtype) for k, v in network.params.items()}
    return MLP(network.spec, noise)


def candidate(store: Path) -> None:
    """mnist v2: ``noisy_copy``, saved."""
    from service.store import ModelStore

    ModelStore(store).save("mnist", noisy_copy(store))


def use(base: str, policy: dict | None) -> None:
    url = f"{base}/models/mnist/traffic"
    answer = requests.put(url, json=policy, timeout=30) if policy else requests.delete(url, timeout=30)
    answer.raise_for_status()
    time.sleep(0.5)  # every worker reads it again (BACKPROP_DEFAULT_REFRESH_SECONDS=0.1)


def shadow_figures(base: str, timeout: float = 15.0) -> dict:
    """The shadow's verdict once every worker's shadow thread has woken since the load stopped: the
    figures lag the requests by up to the thread's interval (``service.traffic.shadow``)."""
    time.sleep(INTERVAL_S + 0.5)
    deadline = time.monotonic() + timeout
    while True:
        figures = requests.get(f"{base}/models/mnist/traffic", timeout=10).json()["figures"].get("2", {})
        if figures.get("compared") or time.monotonic() > deadline:
            return figures
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=12, help="rounds of one wrk run per side")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--pause-ms", type=int, default=0, help="each connection's pause after an answer")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = shipped_store(work / "store")
        candidate(store)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKPROP_", "PROMETHEUS_"))}
        env.update(BACKPROP_MODEL_STORE=str(store), BACKPROP_DEFAULT_REFRESH_SECONDS="0.1")
        digits = sample_digits(200)
        body = work / "single.json"
        body.write_text(json.dumps({"pixels": digits[0].tolist()}))
        runs: dict[str, list[dict]] = {side: [] for side in POLICIES}
        shadow: dict = {}
        answers: dict[str, list[bytes]] = {}
        with served("service:create_app()", env, work) as (base, _):
            for side in ("no_policy", "shadow_everything"):
                use(base, POLICIES[side])
                answers[side] = [
                    requests.post(f"{base}/predict", json={"pixels": row.tolist()}, timeout=10).content
                    for row in digits
                ]
            shuffle = random.Random(0).shuffle
            for round_ in range(args.rounds):
                order = list(POLICIES)
                shuffle(order)
                for side in order:
                    policy = POLICIES[side]
                    use(base, policy)
                    background = None
                    if side == "idle_priority_work_beside":
                        command = [sys.executable, "-c", BACKGROUND]
                        background = subprocess.Popen(command, env=env | BLAS_ALONE)
                    try:
                        runs[side].append(
                            wrk(
                                f"{base}/predict",
                                [(body, JSON)],
                                duration=args.duration,
                                connections=args.connections,
                                workdir=work,
                                pause_ms=args.pause_ms,
                            )
                        )
                    finally:
                        if background is not None:
                            background.kill()
                            background.wait()
                    if side == "shadow_everything" and round_ == args.rounds - 1:  # each round resets them
                        shadow = shadow_figures(base)
    p99 = {side: [r["p99_ms"] for r in results] for side, results in runs.items()}
    median_round = {side: runs[side][p99[side].index(statistics.median_low(p99[side]))] for side in runs}

    def ratio(side: str, other: str) -> dict[str, float]:
        """The rounds' ratios of ``side``'s p99 to ``other``'s: their quartiles."""
        ratios = [a / b for a, b in zip(p99[side], p99[other], strict=True)]
        low, median, high = (
            statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
        )
        return {"q1": low, "median": median, "q3": high}

    shadow_over_none = ratio("shadow_everything", "no_policy")
    idle_over_none = ratio("idle_priority_work_beside", "no_policy")
    print(
        json.dumps(
            {
                "benchmark": "traffic_shadow",
                "machine": machine(),
                "wrk": {
                    "duration_s": args.duration,
                    "connections": args.connections,
                    "pause_ms": args.pause_ms,
                    "rounds": args.rounds,
                },
                "single_image": median_round,
                "p99_ms_by_round": p99,
                "p99_ratio_shadow_over_no_policy": shadow_over_none["median"],
                "p99_ratios": {
                    "shadow_over_no_policy": shadow_over_none,
                    "shadow_over_split_only": ratio("shadow_everything", "split_only"),
                    "split_only_over_no_policy": ratio("split_only", "no_policy"),
                    "idle_priority_work_over_no_policy": idle_over_none,
                },
                "p99_ratio_idle_priority_work_over_no_policy": idle_over_none["median"],
                "answers_compared": len(digits),
                "answers_changed_by_the_shadow": sum(
                    a != b for a, b in zip(answers["no_policy"], answers["shadow_everything"], strict=True)
                ),
                # of the last round's shadowed run
                "shadow_images_compared": shadow.get("compared"),
                "shadow_images_dropped": shadow.get("dropped"),
                "shadow_agreement": shadow.get("agreement"),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
