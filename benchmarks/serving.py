"""Serving an app as ``backprop serve`` does, and driving it with wrk: what the serving benchmarks
(and the load tests) share."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests

from benchmarks import REPO

JSON, RAW = "application/json", "application/octet-stream"

# Cycles through the request bodies given (one per request, in turn); prints one JSON line from
# its done() hook (latency in microseconds).
LUA = """
local bodies = {%(bodies)s}
local prepared = {}
init = function(args)
  for i, body in ipairs(bodies) do
    local f = assert(io.open(body[1], "rb"))
    prepared[i] = wrk.format("POST", nil, body[2], f:read("*a"))
    f:close()
  end
end
local pause = %(pause_ms)d
if pause > 0 then
  delay = function() return pause end
end
local sent = 0
request = function()
  sent = sent + 1
  return prepared[(sent - 1) %% #prepared + 1]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "seconds": %%f, "errors": %%d, "non_2xx": %%d, ' ..
    '"socket_errors": {"connect": %%d, "read": %%d, "write": %%d, "timeout": %%d}, ' ..
    '"p50_ms": %%f, "p90_ms": %%f, "p99_ms": %%f, "max_ms": %%f}\\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout, e.status,
    e.connect, e.read, e.write, e.timeout, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVE = (
    "import sys; from service.serve import prepare, serve; from service.settings import Settings; "
    "s = Settings(); sys.exit(serve(s, prepare(s), worker=sys.argv[2] == 'worker', app=sys.argv[1]))"
)


@contextlib.contextmanager
def served(app: str, env: dict[str, str], workdir: Path, *, worker: bool = False, code: Path = REPO):
    """``app`` served as ``backprop serve`` serves the service (with a training worker if asked), on
    a free port, until it answers; stopped with SIGTERM after. Yields its base URL and its
    Prometheus folder (the service's per-worker request counts). ``code``: the checkout whose
    ``service`` package runs (another commit's, to compare with)."""
    port = free_port()
    state = workdir / f"var-{port}"
    # gRPC only where the caller gives it a port: its processes would take cores from what is measured.
    env = {"BACKPROP_GRPC_PORT": "0", **env, "BACKPROP_PORT": str(port), "BACKPROP_STATE_DIR": str(state)}
    log = workdir / f"serve-{port}.log"
    with log.open("w") as output:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, app, "worker" if worker else "api"],
            env=env | ({"PYTHONPATH": str(code)} if code != REPO else {}),
            cwd=code,
            stdout=output,
            stderr=output,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(base + "/healthz", timeout=5).status_code < 500:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            said = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{app} did not start; it said:\n{said}")
        time.sleep(0.1)
    try:
        yield base, state / "prometheus"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def requests_per_worker(metrics_dir: Path) -> dict[str, float]:
    """HTTP requests each gunicorn worker has answered so far, from its Prometheus samples file."""
    from prometheus_client.mmap_dict import MmapedDict

    counts = {}
    for path in sorted(metrics_dir.glob("counter_*.db")):
        counts[path.stem.removeprefix("counter_")] = sum(
            value
            for key, value, *_ in MmapedDict.read_all_values_from_file(str(path))
            if json.loads(key)[1] == "backprop_http_requests_total"
        )
    return counts


def spread(before: dict[str, float], after: dict[str, float]) -> dict:
    """Requests per worker between two readings, of the workers that answered any (the expensive
    pool's, which predictions never reach, is left out; a cheap worker left idle shows as the
    busiest one's share of 1), and the busiest worker's share of them."""
    counts = sorted((n for pid in after if (n := after[pid] - before.get(pid, 0)) > 0), reverse=True)
    total = sum(counts)
    return {"requests_per_worker": counts, "busiest_worker_share": counts[0] / total if total else None}


def wrk(
    url: str,
    bodies: list[tuple[Path, str | dict[str, str]]],
    *,
    duration: int,
    connections: int,
    workdir: Path,
    pause_ms: int = 0,
) -> dict:
    """POST ``bodies`` (file, and its content type or all its headers), in turn, for ``duration``
    seconds, each connection pausing ``pause_ms`` after each answer (0: sending at once, as fast as
    the service answers); wrk's figures."""
    script = workdir / f"{bodies[0][0].stem}-{len(bodies)}.lua"

    def lua_table(headers: str | dict[str, str]) -> str:
        headers = {"Content-Type": headers} if isinstance(headers, str) else headers
        return "{" + ", ".join(f'["{name}"] = "{value}"' for name, value in headers.items()) + "}"

    listed = ", ".join(f'{{"{path}", {lua_table(headers)}}}' for path, headers in bodies)
    script.write_text(LUA % {"bodies": listed, "pause_ms": pause_ms})
    command = ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{duration}s"]
    out = subprocess.run(
        [*command, "--timeout", "30s", "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    result["requests_per_second"] = result["requests"] / result["seconds"]
    return result


def sample_digits(n: int) -> np.ndarray:
    from service.data import load_dataset

    data = load_dataset("mnist", REPO.parent / "shared" / "data" / "mnist-5k")
    reps = -(-n // len(data.train_x))
    return np.tile(data.train_x, (reps, 1))[:n]
