"""Cheap requests under a flood of expensive ones: /predict and /healthz while clients send
explanations of the largest cost the API accepts and the costliest pictures it decodes.

Serves the service as ``backprop serve`` does (nginx, the cheap and the expensive gunicorn pools;
no training worker), measures single-image /predict with wrk while idle, then again while
``--explain-clients`` loop ``POST /explain`` (BACKPROP_EXPLAIN_MAX_BATCH images, 512 steps) and
``--picture-clients`` loop ``POST /predict`` with an all-zero 16-bit RGBA PNG of just under
BACKPROP_MAX_IMAGE_PIXELS (a few hundred KB that decode to over 100 MB). A client that is refused
waits ``--think`` seconds and asks again: a flood, not a polite client. The flooding clients run
in a process of their own at a lower CPU priority: they stand for other machines, and on this one
must not take the CPU the measured server needs. At normal priority, a prober asks /healthz every
0.1 s throughout, and another sends an explanation every 0.1 s while /predict is measured: its
refusals are timed there.

Prints one JSON object: both /predict runs and their ratios (targets: throughput at least 0.7 of
idle, p99 under 3x idle), /healthz's slowest answer (target: under 1 s), and what the expensive
clients got: answers, refusals (each with Retry-After; the slowest, target under 100 ms), and
timeouts or errors (target: none).

    python -m benchmarks.cost_classes [--duration 10] [--explain-clients 16] [--picture-clients 8]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from benchmarks import REPO, machine, shipped_store
from benchmarks.serving import JSON, sample_digits, served, wrk
from service.priority import lower_priority
from service.settings import Settings

ATTACKER_NICE = 19


def worst_picture(pixels: int) -> bytes:
    """An all-zero 16-bit RGBA PNG of about ``pixels`` pixels (square): small to send, costly to decode."""
    side = int(pixels**0.5)
    row = b"\0" + bytes(side * 8)  # filter byte, then 4 channels x 2 bytes

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def explain_body(images: int) -> bytes:
    """The costliest explanation the API accepts: the most images, the most steps."""
    return json.dumps({"instances": sample_digits(images).tolist(), "steps": 512}).encode()


def _percentile(values: list[float], share: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else None


def flood(kind: str, url: str, body: bytes, content_type: str, until: float, think: float) -> dict:
    """One client's loop until ``until`` (monotonic): what it got."""
    got = {"answered": 0, "refused": 0, "refusal_ms": [], "without_retry_after": 0, "failed": 0, "other": {}}
    with requests.Session() as session:
        while time.monotonic() < until:
            start = time.monotonic()
            try:
                response = session.post(url, data=body, headers={"Content-Type": content_type}, timeout=30)
            except requests.RequestException as exc:
                got["failed"] += 1
                got["other"][type(exc).__name__] = got["other"].get(type(exc).__name__, 0) + 1
                continue
            took_ms = (time.monotonic() - start) * 1000
            if response.status_code == 200:
                got["answered"] += 1
            elif response.status_code in (429, 503):
                got["refused"] += 1
                got["refusal_ms"].append(took_ms)
                got["without_retry_after"] += "Retry-After" not in response.headers
                time.sleep(think)
            else:
                got["other"][str(response.status_code)] = got["other"].get(str(response.status_code), 0) + 1
    return {"kind": kind, **got}


def attack(args: argparse.Namespace) -> None:
    """The flooding clients (run as a child process, see the module's docstring)."""
    lower_priority(ATTACKER_NICE)
    settings = Settings()
    explain = explain_body(settings.explain_max_batch)
    picture = worst_picture(settings.max_image_pixels)
    until = time.monotonic() + args.seconds
    jobs = [("explain", f"{args.attack}/explain", explain, JSON)] * args.explain_clients
    jobs += [("picture", f"{args.attack}/predict", picture, "image/png")] * args.picture_clients
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: flood(*job, until, args.think), jobs))
    summary = {}
    for kind in ("explain", "picture"):
        mine = [r for r in results if r["kind"] == kind]
        refusals = [ms for r in mine for ms in r["refusal_ms"]]
        others: dict[str, int] = {}
        for r in mine:
            for key, count in r["other"].items():
                others[key] = others.get(key, 0) + count
        summary[kind] = {
            "clients": len(mine),
            "answered": sum(r["answered"] for r in mine),
            "refused": len(refusals),
            "refusals_without_retry_after": sum(r["without_retry_after"] for r in mine),
            "refusal_p99_ms": _percentile(refusals, 0.99),
            "refusal_max_ms": max(refusals, default=None),
            "timeouts_or_errors": sum(r["failed"] for r in mine),
            "other_answers": others,
        }
    summary["picture_bytes"] = len(picture)
    print(json.dumps(summary))


class Prober(threading.Thread):
    """One request every 0.1 s until stopped, at normal priority; (status, ms) of each (status 0:
    no answer within 10 s)."""

    def __init__(self, url: str, body: bytes | None = None, content_type: str = JSON) -> None:
        super().__init__(daemon=True)
        self.url, self.body, self.content_type = url, body, content_type
        self.results: list[tuple[int, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stopped.is_set():
                start = time.monotonic()
                try:
                    if self.body is None:
                        status = session.get(self.url, timeout=10).status_code
                    else:
                        headers = {"Content-Type": self.content_type}
                        response = session.post(self.url, data=self.body, headers=headers, timeout=10)
                        status = response.status_code
                        if status in (429, 503) and "Retry-After" not in response.headers:
                            status = -status  # a refusal that does not say when to come back
                except requests.RequestException:
                    status = 0
                self.results.append((status, (time.monotonic() - start) * 1000))
                self.stopped.wait(0.1)

    def stop(self) -> list[tuple[int, float]]:
        self.stopped.set()
        self.join()
        return self.results


def measure(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        env["BACKPROP_MODEL_STORE"] = os.environ.get("BACKPROP_MODEL_STORE") or str(
            shipped_store(work / "store")
        )
        single = work / "single.json"
        single.write_text(json.dumps({"pixels": sample_digits(1)[0].tolist()}))
        run = dict(duration=args.duration, connections=args.connections, workdir=work)
        with served("service:create_app()", env, work) as (base, _):
            idle = wrk(f"{base}/predict", [(single, JSON)], **run)
            health = Prober(f"{base}/healthz")
            health.start()
            flooding = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.cost_classes", "--attack", base, "--seconds",
                 str(args.duration + 2 * args.warmup), "--think", str(args.think),
                 "--explain-clients", str(args.explain_clients),
                 "--picture-clients", str(args.picture_clients)],
                env=env, cwd=REPO, stdout=subprocess.PIPE, text=True, start_new_session=True,
            )  # fmt: skip
            time.sleep(args.warmup)  # every flooding client has sent its first request
            # One more expensive client at normal priority: how fast refusals are, seen from a
            # client the flood does not slow.
            refusals = Prober(f"{base}/explain", explain_body(Settings().explain_max_batch))
            refusals.start()
            loaded = wrk(f"{base}/predict", [(single, JSON)], **run)
            refused = refusals.stop()
            expensive = json.loads(flooding.communicate(timeout=args.duration + 120)[0])
            healthz = health.stop()
    settings = Settings()
    health_max = max(ms if status == 200 else float("inf") for status, ms in healthz)
    refusal_ms = [ms for status, ms in refused if status in (429, 503)]
    refusal_max = max(refusal_ms, default=0.0)
    throughput = loaded["requests_per_second"] / idle["requests_per_second"]
    p99 = loaded["p99_ms"] / idle["p99_ms"]
    failures = sum(expensive[k]["timeouts_or_errors"] for k in ("explain", "picture"))
    missing_retry = sum(expensive[k]["refusals_without_retry_after"] for k in ("explain", "picture"))
    missing_retry += sum(status < 0 for status, _ in refused)
    failures += sum(status == 0 for status, _ in refused)
    return {
        "benchmark": "cost_classes",
        "machine": machine(),
        "served_as": {
            "front": "nginx",
            "cheap_workers": settings.workers,
            "expensive_workers": settings.expensive_workers,
            "expensive_waiting": settings.expensive_waiting,
            "expensive_nice": settings.expensive_nice,
            "max_image_pixels": settings.max_image_pixels,
        },
        "flood": {
            "explain_clients": args.explain_clients,
            "picture_clients": args.picture_clients,
            "think_after_refusal_s": args.think,
            "clients_nice": ATTACKER_NICE,
        },
        "predict_idle": idle,
        "predict_flooded": loaded,
        "predict_throughput_flooded_over_idle": throughput,
        "predict_p99_flooded_over_idle": p99,
        "healthz": {"probes": len(healthz), "max_ms": health_max},
        "expensive": expensive,  # as the flooding clients saw it (at their low priority)
        "expensive_probe": {
            "requests": len(refused),
            "answered": sum(status == 200 for status, _ in refused),
            "refused": len(refusal_ms),
            "refusal_p99_ms": _percentile(refusal_ms, 0.99),
            "refusal_max_ms": refusal_max,
        },
        "targets": {
            "throughput_at_least_0.7_of_idle": throughput >= 0.7,
            "p99_under_3x_idle": p99 < 3.0,
            "healthz_under_1s": health_max < 1000.0,
            "refusals_within_100ms_with_retry_after": refusal_max < 100.0 and missing_retry == 0,
            "no_timeouts_or_errors": failures == 0,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=4, help="wrk's connections to /predict")
    parser.add_argument("--explain-clients", type=int, default=16)
    parser.add_argument("--picture-clients", type=int, default=8)
    parser.add_argument("--think", type=float, default=0.1, help="seconds a refused client waits")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of flood before measuring")
    parser.add_argument("--attack", help=argparse.SUPPRESS)  # internal: be the flooding clients
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attack:
        attack(args)
    else:
        print(json.dumps(measure(args), indent=2))


if __name__ == "__main__":
    main()
