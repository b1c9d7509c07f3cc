"""Where the time of one ``POST /predict`` goes, in microseconds per request.

In this process, configured as a gunicorn worker is (one BLAS thread, Prometheus metrics in
multiprocess files, the access log written to a file), the service's WSGI app answers one JSON
image many times while timers around its parts add up their share: body parsing, validation, model
lookup, the forward pass, the response, the request hooks and access log, the metrics. What is left
of the whole call is the rest: the fast lane's own work (``service.api.fast_lane``), or, for the
same request sent through the Flask app alone, Flask's, werkzeug's and flask-openapi3's. The Flask
echo of the same body (``benchmarks/echo_app.py``) is timed the same way, as the framework's floor.

Then over HTTP (wrk, one connection, interleaved rounds, medians): both apps through gunicorn
alone and through nginx; less the in-process time, that is what a request spends outside the app
(gunicorn, nginx, loopback and wrk), and the difference of the two fronts is nginx's hop.

    python -m benchmarks.predict_budget [--requests 5000] [--duration 4] [--rounds 3] [--no-http]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks import machine, shipped_store

PART_NAMES = {
    "body_parsing": "the JSON body into a pixel matrix",
    "validation": "the request's fields (model, version, scale) and the pixels' range",
    "model_lookup": "the registry: defaults and the version's file identity, at most every second",
    "forward_pass": "normalisation, the three layers, softmax",
    "response": "the answer's document and its serialisation",
    "hooks_and_access_log": "request id, Content-Encoding check, X-Request-ID, the access log line",
    "metrics": "Prometheus: request count and latency, images counted",
}


def _environ(path: str, body: bytes) -> dict:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:8000",
        "REMOTE_ADDR": "127.0.0.1",
    }


def call(app, path: str, body: bytes) -> bytes:
    """One request through ``app``'s WSGI interface, as gunicorn makes it; the body it answered."""
    status = []
    out = app(_environ(path, body), lambda s, headers, exc_info=None: status.append(s))
    answer = b"".join(out)
    if hasattr(out, "close"):
        out.close()
    if not status[0].startswith("200"):
        raise RuntimeError(f"{path} answered {status[0]}: {answer[:300]!r}")
    return answer


class Timers:
    """Seconds spent in each named part, summed over the requests; a part timed inside another
    (the metrics inside the after-request hook) counts for itself only."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self._inside: list[float] = []  # per open timer: its timed children's seconds

    def wrap(self, part: str, fn):
        clock, spent, inside = time.perf_counter, self.spent, self._inside

        def timed(*args, **kwargs):
            start = clock()
            inside.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = clock() - start
                spent[part] += elapsed - inside.pop()
                if inside:
                    inside[-1] += elapsed

        return timed


def _instrument(app, timers: Timers) -> None:
    """Put a timer around each part of the service's /predict, in this process only."""
    from service.api import access, fast_lane, inputs, schemas
    from service.api.state import service_state
    from service.app import OrjsonProvider
    from service.registry import LoadedModel

    state = service_state(app)
    inputs.parse_predict_json = timers.wrap("body_parsing", inputs.parse_predict_json)
    validate = schemas.PredictRequest.model_validate
    schemas.PredictRequest.model_validate = timers.wrap("validation", validate)
    state.registry.get = timers.wrap("model_lookup", state.registry.get)
    LoadedModel.predict = timers.wrap("forward_pass", LoadedModel.predict)
    OrjsonProvider.response = timers.wrap("response", OrjsonProvider.response)
    fast_lane.json_bytes = timers.wrap("response", fast_lane.json_bytes)
    state.metrics.observe = timers.wrap("metrics", state.metrics.observe)
    state.metrics.count_images = timers.wrap("metrics", state.metrics.count_images)
    access.record = timers.wrap("hooks_and_access_log", access.record)
    access.request_id = timers.wrap("hooks_and_access_log", access.request_id)
    for funcs in (app.before_request_funcs, app.after_request_funcs):
        funcs[None] = [timers.wrap("hooks_and_access_log", hook) for hook in funcs[None]]


def _per_request(app, path: str, body: bytes, requests: int, timers: Timers | None = None) -> dict:
    """Microseconds per request for the whole call (and, with ``timers``, for each part), the
    median of five runs of ``requests``."""
    for _ in range(min(500, requests)):
        call(app, path, body)
    runs = []
    for _ in range(5):
        if timers is not None:
            timers.spent.clear()
        start = time.perf_counter()
        for _ in range(requests):
            call(app, path, body)
        total = time.perf_counter() - start
        run = {"whole_request": total}
        if timers is not None:
            run.update(timers.spent)
        runs.append({k: v / requests * 1e6 for k, v in run.items()})
    return {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}


def in_process(work: Path, requests: int) -> dict:
    """The budget of one request inside a worker process configured as gunicorn's are."""
    import logging.config

    import numpy as np

    from benchmarks.echo_app import create_app as create_echo
    from service import create_app
    from service.logs import formatter
    from service.settings import Settings

    log_file = (work / "access.log").open("a")
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"chosen": formatter("plain")},
            "handlers": {
                "file": {"class": "logging.StreamHandler", "formatter": "chosen", "stream": log_file}
            },
            "loggers": {"service": {"level": "INFO", "handlers": ["file"], "propagate": False}},
        }
    )
    settings = Settings(model_store=shipped_store(work / "store"), state_dir=work / "var")
    app, echo = create_app(settings), create_echo()
    rng = np.random.default_rng(0)
    body = json.dumps({"pixels": rng.integers(0, 256, 784).tolist()}).encode()
    # The same request through the Flask app alone: what it costs without the fast lane.
    through_app = app.wsgi_app.app.app  # BoundedBody(FastLane(Flask's own wsgi_app))
    echo_figures = _per_request(echo, "/echo", body, requests)
    plain = {
        "fast_lane": _per_request(app, "/predict", body, requests)["whole_request"],
        "flask_app": _per_request(through_app, "/predict", body, requests)["whole_request"],
    }
    timers = Timers()
    _instrument(app, timers)
    budgets = {}
    for way, wsgi, rest in (
        ("fast_lane", app, "the lane's own work: routing, reading the body, the WSGI answer"),
        ("flask_app", through_app, "Flask, werkzeug and flask-openapi3: context, routing, response"),
    ):
        parts = _per_request(wsgi, "/predict", body, requests, timers)
        whole = parts.pop("whole_request")
        budget = {name: parts.get(name, 0.0) for name in PART_NAMES}
        budget["the_rest"] = round(whole - sum(budget.values()), 1)
        budgets[way] = {"parts_us": budget, "the_rest_is": rest, "measured_with_timers_us": whole}
    return {
        "body": "one image, 784 integers 0-255, as JSON",
        "echo_us": echo_figures["whole_request"],
        "predict_us": plain,
        "predict_over_echo": {way: round(us / echo_figures["whole_request"], 3) for way, us in plain.items()},
        "budgets": budgets,
        "parts": PART_NAMES,
    }


def over_http(work: Path, duration: int, rounds: int) -> dict:
    """p50 at one connection, service and echo, through gunicorn alone and through nginx."""
    from benchmarks.serving import JSON, served, wrk

    single = work / "single.json"
    import numpy as np

    single.write_text(json.dumps({"pixels": np.random.default_rng(0).integers(0, 256, 784).tolist()}))
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["BACKPROP_MODEL_STORE"] = str(shipped_store(work / "http-store"))
    figures: dict[str, dict[str, list[dict]]] = {}
    for front in ("none", "nginx"):
        env["BACKPROP_FRONT"] = front
        runs: dict[str, list[dict]] = {"echo": [], "predict": []}
        with (
            served("benchmarks.echo_app:create_app()", env, work) as (echo_base, _),
            served("service:create_app()", env, work) as (base, _),
        ):
            for _ in range(rounds):
                for side, url in (("echo", f"{echo_base}/echo"), ("predict", f"{base}/predict")):
                    runs[side].append(
                        wrk(url, [(single, JSON)], connections=1, duration=duration, workdir=work)
                    )
        figures[front] = runs

    def median(front: str, side: str, key: str) -> float:
        return round(statistics.median(r[key] for r in figures[front][side]), 3)

    result = {
        front: {
            side: {key: median(front, side, key) for key in ("p50_ms", "p99_ms", "requests_per_second")}
            for side in ("echo", "predict")
        }
        for front in figures
    }
    for front in figures:
        result[front]["p50_predict_over_echo"] = round(
            result[front]["predict"]["p50_ms"] / result[front]["echo"]["p50_ms"], 3
        )
    result["nginx_hop_p50_ms"] = round(
        result["nginx"]["predict"]["p50_ms"] - result["none"]["predict"]["p50_ms"], 3
    )
    result["p99_nginx_over_gunicorn"] = round(
        result["nginx"]["predict"]["p99_ms"] / result["none"]["predict"]["p99_ms"], 3
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per in-process run")
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved wrk rounds per front")
    parser.add_argument("--no-http", action="store_true", help="only the in-process budget")
    args = parser.parse_args()
    # As in a gunicorn worker (service.gunicorn_conf): set before NumPy and prometheus_client load.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        http = None if args.no_http else over_http(work, args.duration, args.rounds)
        (work / "prometheus").mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(work / "prometheus")
        inside = in_process(work, args.requests)
        if http is not None:
            # What one request spends outside the app: gunicorn (and nginx), loopback, wrk.
            for front in ("none", "nginx"):
                p50_us = http[front]["predict"]["p50_ms"] * 1000
                http[front]["outside_the_app_us"] = round(p50_us - inside["predict_us"]["fast_lane"], 1)
        report = {
            "benchmark": "predict_budget",
            "machine": machine(),
            "in_process": inside,
            "http_one_connection": http,
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
