"""The benchmark scripts run end to end (on tiny data) and print the JSON they promise.

The tests check that the figures are there and consistent, not what they are, so the runs share the
cores: they start together when the module's first test does, three at a time (one alone leaves a
core idle part of the time, while its servers start and between its wrk rounds), and each test
waits for its own."""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import REPO, write_tiny_dataset

AT_ONCE = 3


def _run(script: str, *args: str) -> dict:
    module = "benchmarks." + script
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, f"{module} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def _commands(tiny: str, candidate: str) -> dict[str, tuple[str, ...]]:
    """The benchmark each test runs, by test name; the longest first."""
    return {
        "test_predict_load_reports_single_and_batch_figures": (
            *("predict_load", "--duration", "1", "--rounds", "1", "--batch", "50", "--connections", "1"),
            *("--grpc-batch", "100", "--grpc-callers", "2"),
        ),
        "test_tracing_cost_measures_off_and_on_and_the_off_path": (
            *("tracing_cost", "--duration", "1", "--rounds", "1", "--calls", "1000", "--baseline", "HEAD"),
        ),
        "test_predict_budget_times_both_fronts_over_http": (
            *("predict_budget", "--requests", "100", "--duration", "1", "--rounds", "1"),
        ),
        "test_model_cost_prices_an_ensemble_of_the_shipped_model_against_it": (
            *("model_cost", "--candidate", candidate, "--duration", "1", "--rounds", "1"),
        ),
        "test_traffic_shadow_compares_latency_with_and_without_a_shadow": (
            *("traffic_shadow", "--duration", "1", "--rounds", "2", "--connections", "2", "--pause-ms", "1"),
        ),
        "test_predict_during_training_compares_idle_and_busy_latency": (
            *("predict_during_training", "--duration", "1", "--connections", "1"),
        ),
        "test_train_speed_reports_engine_matmul_floor_and_ratios": (
            *("train_speed", "--data-dir", tiny, "--repeats", "1"),
        ),
        "test_train_accuracy_runs_the_cli_on_both_datasets": (
            *("train_accuracy", "--fashion-dir", tiny, "--mnist5k-dir", tiny),
        ),
        "test_predict_budget_splits_one_request_into_its_parts": (
            *("predict_budget", "--no-http", "--requests", "200"),
        ),
        "test_drift_cost_times_both_sides_and_the_on_side_counts_every_answer": (
            *("drift_cost", "--calls", "300", "--repeats", "2"),
        ),
        "test_explain_speed_times_every_method_beside_predict": ("explain_speed", "--repeats", "1"),
    }


def _doubled(shipped_store: Path, folder: Path) -> Path:
    """A store whose mnist v1 is an ensemble of two copies of the shipped model."""
    from service.nn.ensemble import merge_members
    from service.store import ModelStore

    network, meta = ModelStore(shipped_store).load()
    candidate = ModelStore(folder)
    members = 2 * meta["training"]["members"]
    saved = candidate.save("mnist", merge_members([network, network]), {"training": {"members": members}})
    candidate.set_default("mnist", saved["version"])
    return folder


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, shipped_store):
    folder = tmp_path_factory.mktemp("benchmarks")
    tiny, candidate = write_tiny_dataset(folder / "tiny"), _doubled(shipped_store, folder / "candidate")
    selected = {item.name for item in request.session.items if item.module is request.module}
    commands = _commands(str(tiny), str(candidate))
    with ThreadPoolExecutor(AT_ONCE) as pool:
        yield {name: pool.submit(_run, *command) for name, command in commands.items() if name in selected}


@pytest.fixture
def result(runs, request) -> dict:
    """What this test's benchmark printed."""
    return runs[request.node.name].result()


@pytest.mark.slow
def test_train_speed_reports_engine_matmul_floor_and_ratios(result):
    assert result["images"] == 600 and result["machine"]["cpus"] >= 1
    seconds = {name: result[name]["epoch_seconds"] for name in ("engine", "matmul_only", "optimizer_only")}
    assert all(s > 0 for s in seconds.values())
    assert result["engine_time_over_matmul_time"] == pytest.approx(seconds["engine"] / seconds["matmul_only"])
    augmented = result["engine_augmented"]["epoch_seconds"]
    assert result["augmented_time_over_plain_time"] == pytest.approx(augmented / seconds["engine"])
    assert result["augmentation"]["elastic_alpha"] > 0  # as the shipped model was trained
    assert set(result["loader_speedup"]) == {"plain", "augmented"}
    phases = result["engine_phases_seconds"]
    assert set(phases) == {"gather", "forward_and_loss", "backward", "optimizer"}
    assert all(s > 0 for s in phases.values())
    assert result["serial_floor_seconds"] == pytest.approx(
        seconds["matmul_only"] + seconds["optimizer_only"] + phases["gather"]
    )
    assert result["serial_floor_over_matmul_time"] > 1
    if result["torch"] is not None:
        assert result["engine_throughput_over_torch"] > 0
        assert result["serial_floor_throughput_over_torch"] == pytest.approx(
            result["torch"]["epoch_seconds"] / result["serial_floor_seconds"]
        )


@pytest.mark.slow
def test_train_accuracy_runs_the_cli_on_both_datasets(result):
    for key in ("fashion_mnist", "mnist_5k"):
        assert result[key]["epochs"] == 30
        assert result[key]["test_accuracy"] > 0.9


@pytest.mark.slow
def test_predict_load_reports_single_and_batch_figures(result):
    single = result["single_image"]
    for side in ("predict", "echo"):
        assert single[side]["requests"] > 0 and single[side]["errors"] == 0 and single[side]["non_2xx"] == 0
        assert 0 < single[side]["p50_ms"] <= single[side]["p99_ms"]
    for ratio in ("throughput_ratio", "p50_ratio"):
        for route in ("predict", "v2_json"):
            assert single[f"{ratio}_{route}_over_echo"] > 0
    workers = single["predict"]["workers"]  # nginx before gunicorn, like backprop serve
    # One connection: the first worker takes (nearly) every request (service.gunicorn_worker).
    assert 1 <= len(workers["requests_per_worker"]) <= 2
    # wrk does not count the requests still in flight when it stops
    assert 0 <= sum(workers["requests_per_worker"]) - single["predict"]["requests"] <= 2
    assert 0.5 <= single["busiest_worker_share_worst_round"] <= 1.0
    for kind in ("json", "raw_bytes", "v2_json", "v2_binary"):
        assert result["batch"][kind]["non_2xx"] == 0 and result["batch"][kind]["images_per_second"] > 0
        side = "predict" if kind == "json" else kind
        assert single[side]["requests"] > 0 and single[side]["non_2xx"] == 0 and single[side]["errors"] == 0
    for figures in (single, result["batch"]):
        assert figures["throughput_ratio_v2_binary_over_raw_bytes"] > 0
        assert figures["throughput_ratio_v2_json_over_predict_json"] > 0
    grpc = result["grpc_beside_rest"]  # every side answered every call, at 2 callers
    assert grpc["images_per_batch"] == 100
    assert grpc["tool"].startswith("h2load")
    assert not {"1_caller", "8_callers"} & grpc.keys()
    for count, key in ((2, "2_callers"),):
        found = grpc[key]
        for kind, sides in (
            ("single", ("grpc_raw", "rest_predict_raw", "rest_v2_binary")),
            ("batch", ("grpc_raw", "rest_v2_binary")),
        ):
            for side in sides:
                figures = found[kind][side]
                assert figures["connections"] == count, figures
                assert figures["requests"] > 0 and figures["errors"] == 0, figures
                assert 0 < figures["p50_ms"] <= figures["p99_ms"]
        assert found["single"]["p50_ratio_grpc_over_v2_binary"] > 0
        assert found["single"]["p50_ratio_grpc_over_predict_raw"] > 0
        assert found["batch"]["throughput_ratio_grpc_over_rest_binary"] > 0


def test_predict_budget_splits_one_request_into_its_parts(result):
    result = result["in_process"]
    assert result["echo_us"] > 0 and set(result["predict_us"]) == {"fast_lane", "flask_app"}
    for way, budget in result["budgets"].items():
        parts = budget["parts_us"]
        assert set(parts) == {*result["parts"], "the_rest"}, way
        assert all(parts[name] > 0 for name in result["parts"]), (way, parts)
        assert sum(parts.values()) == pytest.approx(budget["measured_with_timers_us"], abs=1)


@pytest.mark.slow
def test_predict_budget_times_both_fronts_over_http(result):
    http = result["http_one_connection"]
    for front in ("none", "nginx"):
        for side in ("echo", "predict"):
            assert 0 < http[front][side]["p50_ms"] <= http[front][side]["p99_ms"]
        assert http[front]["p50_predict_over_echo"] > 0
        # Two medians of separate runs, a few hundred requests at this scale: their difference is the
        # figure, and on a busy draw of the machine (the suite builds an image meanwhile) it can be
        # below zero, so only its arithmetic is checked here.
        inside_us = result["in_process"]["predict_us"]["fast_lane"]
        outside_us = http[front]["predict"]["p50_ms"] * 1000 - inside_us
        assert http[front]["outside_the_app_us"] == pytest.approx(outside_us, abs=0.1)
    assert http["p99_nginx_over_gunicorn"] > 0


@pytest.mark.slow
def test_predict_during_training_compares_idle_and_busy_latency(result):
    assert result["training_job"]["status_at_end_of_measurement"] == "running"
    for side in ("idle", "while_training"):
        assert result[side]["requests"] > 0 and result[side]["non_2xx"] == 0 and result[side]["errors"] == 0
    assert result["p99_ratio_training_over_idle"] > 0


def test_explain_speed_times_every_method_beside_predict(result):
    for batch in ("batch_1", "batch_16"):
        assert set(result[batch]) == {"predict", "gradient", "integrated_gradients", "smoothgrad"}
        assert all(figures["ms_per_request"] > 0 for figures in result[batch].values())
    assert result["machine"]["cpus"] >= 1


@pytest.mark.slow
def test_traffic_shadow_compares_latency_with_and_without_a_shadow(result):
    assert result["wrk"]["pause_ms"] == 1
    for side in ("no_policy", "split_only", "shadow_everything", "idle_priority_work_beside"):
        figures = result["single_image"][side]
        assert figures["requests"] > 0 and figures["errors"] == 0 and figures["non_2xx"] == 0
    assert result["answers_changed_by_the_shadow"] == 0 and result["answers_compared"] == 200
    assert result["shadow_images_compared"] > 0 and 0 <= result["shadow_agreement"] <= 1
    assert result["p99_ratio_shadow_over_no_policy"] > 0 and result["shadow_images_dropped"] >= 0
    assert result["p99_ratio_idle_priority_work_over_no_policy"] > 0
    assert all(len(p99) == 2 for p99 in result["p99_ms_by_round"].values())  # one run per side a round
    ratios = result["p99_ratios"]  # the quartiles of the rounds' own ratios
    for ratio in ratios.values():
        assert 0 < ratio["q1"] <= ratio["median"] <= ratio["q3"]
    assert ratios["shadow_over_no_policy"]["median"] == result["p99_ratio_shadow_over_no_policy"]


@pytest.mark.slow
def test_tracing_cost_measures_off_and_on_and_the_off_path(result):
    for side in ("off_1", "off_8", "on_1", "on_8", "baseline_1", "baseline_8"):
        figures = result["predict"][side]
        assert figures["requests_per_second"] > 0 and 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert result["exported_bytes"] > 0  # the traced side did export its spans
    assert result["throughput_ratio_on_over_off_8"] > 0 and result["p50_ratio_on_over_off_1"] > 0
    assert result["baseline"] == "HEAD" and result["throughput_ratio_off_over_baseline_8"] > 0
    found = result["off_path_in_process"]
    assert found["with_the_off_span"] > 0 and found["without_it"] > 0


@pytest.mark.slow
def test_drift_cost_times_both_sides_and_the_on_side_counts_every_answer(result):
    found = result["one_image_classification_us"]
    assert found["off"] > 0 and found["on"] > 0 and found["answers_counted_on"] == 600


def test_model_cost_prices_an_ensemble_of_the_shipped_model_against_it(result, shipped_store):
    from service.store import ModelStore

    network, meta = ModelStore(shipped_store).load()
    members = meta["training"]["members"]
    hidden = list(network.spec.hidden)
    assert result["models"]["baseline"] == {"model": "mnist v1", "hidden": hidden, "members": members}
    assert result["models"]["candidate"] == {
        "model": "mnist v1",
        "hidden": [2 * size for size in hidden],
        "members": 2 * members,
    }
    for side in ("baseline", "candidate"):
        figures = result["served_one_image"][side]
        assert (
            figures["requests"] > 0 and figures["non_2xx"] == 0 and 0 < figures["p50_ms"] <= figures["p99_ms"]
        )
    forward = result["forward_one_image_us"]
    assert result["forward_ratio"] == pytest.approx(forward["candidate"] / forward["baseline"])
    assert forward["candidate"] > forward["baseline"] > 0  # more weights to read
