"""Corrections in a real browser against a real ``backprop serve`` with a training worker and MNIST's
60,000 digits: a "1" drawn with a flag, as much of Europe writes it, is a 7 to the shipped model;
the test corrects 60 of them on the draw page, sees them on the dashboard, starts a fine-tuning
there, and measures the new version against the default: on the held-out corrections (clearly
better) and on the 10,200 MNIST digits neither trained on (at most 0.1 points worse)."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import requests
from playwright.sync_api import expect

from service.data import load_dataset
from service.feedback.dataset import held_out
from service.training import TrainingConfig, split_indices
from tests.conftest import TOKEN, copy_shipped_store
from tests.system.drawing import draw
from tests.system.processes import AUTH, running

CORRECTIONS = 60


def flagged_one(rng: np.random.Generator) -> list[list[tuple[float, float]]]:
    """One stroke: up the flag, then down the stem (in the pad's pixels, slightly different each time)."""

    def near(x: float, y: float, by: float) -> tuple[float, float]:
        return (x + rng.uniform(-by, by), y + rng.uniform(-by, by))

    return [[near(95, 95, 10), near(150, 50, 5), near(150, 230, 5)]]


def _labels(base: str, pixels: np.ndarray, version: int) -> np.ndarray:
    answer = requests.post(
        f"{base}/predict?model=mnist&version={version}",
        data=np.ascontiguousarray(pixels, dtype=np.uint8).tobytes(),
        headers={"Content-Type": "application/octet-stream"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return np.array([p["label"] for p in answer.json()["predictions"]])


def test_corrections_drawn_on_the_page_fine_tune_a_better_version(
    tmp_path, pages, mnist_dir, screenshots, robustness
):
    data = tmp_path / "data"
    data.mkdir()
    (data / "mnist").symlink_to(mnist_dir)  # the store of corrections goes beside it, not into it
    store = copy_shipped_store(tmp_path / "store")
    rng = np.random.default_rng(2026)
    with running(tmp_path, model_store=store, data_dir=data, feedback_per_minute=1000) as service:
        base = service.url
        page = pages.open(f"{base}/")
        for drawn in range(CORRECTIONS):
            if drawn:
                page.locator("#clear").click()
            draw(page, flagged_one(rng))
            if drawn == 0:  # the model gets it wrong, and the person says what it was
                expect(page.get_by_test_id("prediction")).to_have_text(re.compile(r"^7"))
                expect(page.get_by_text("Wrong? It was:")).to_be_visible()
            with page.expect_response(lambda r: r.url.endswith("/feedback")) as sent:
                page.get_by_test_id("correct-1").click()
            assert sent.value.status == 201
        expect(page.get_by_test_id("correction-status")).to_have_text(re.compile(r"saved as a 1"))
        page.screenshot(path=screenshots / "correction.png")

        examples = requests.get(
            f"{base}/feedback?with_pixels=true&limit=100", headers=AUTH, timeout=10
        ).json()
        assert examples["summary"]["per_label"][1] == CORRECTIONS and examples["total"] == CORRECTIONS
        answered = examples["summary"]["confusions"]
        assert answered[7][1] >= CORRECTIONS * 0.8, answered  # mostly read as 7s
        ids = np.array([e["id"] for e in examples["examples"]])
        pixels = np.array([e["pixels"] for e in examples["examples"]])[held_out(ids)]
        assert len(pixels) == CORRECTIONS // 5

        dashboard = pages.open(f"{base}/dashboard")
        dashboard.get_by_label("Token", exact=True).fill(TOKEN)
        counts = dashboard.get_by_test_id("corrections-counts")
        expect(counts).to_contain_text(str(CORRECTIONS))
        expect(dashboard.get_by_test_id("correction")).to_have_count(48)  # the newest, as pictures
        expect(dashboard.get_by_test_id("confusions")).to_contain_text("answered 7 when it was 1")
        polls = []  # from now on the corrections do not change: the dashboard's polls ask for no pixels
        dashboard.on("request", lambda r: "/feedback?" in r.url and polls.append(r.url))
        dashboard.get_by_test_id("fine-tune").click()
        expect(dashboard.get_by_test_id("corrections-status")).to_contain_text("fine-tuning")
        job = dashboard.get_by_test_id("job").first
        deadline = time.monotonic() + 240
        while "succeeded" not in job.get_by_test_id("job-status").inner_text():
            assert time.monotonic() < deadline and "failed" not in job.inner_text(), job.inner_text()
            dashboard.wait_for_timeout(200)
        assert "made mnist version 2" in job.inner_text()
        expect(dashboard.get_by_test_id("correction")).to_have_count(48)
        while not polls:  # the dashboard polls the corrections every 5 s
            assert time.monotonic() < deadline
            dashboard.wait_for_timeout(200)
        assert all("with_pixels=false" in url for url in polls), polls
        dashboard.screenshot(path=screenshots / "corrections.png", full_page=True)

        tuned = requests.get(f"{base}/models/mnist/versions/2", timeout=10).json()
        assert tuned["fine_tuned_from"] == {"model": "mnist", "version": 1}
        assert tuned["dataset"]["name"] == "mnist" and tuned["metrics"]["corrections_samples"] == len(pixels)
        before = float((_labels(base, pixels, 1) == 1).mean())
        after = float((_labels(base, pixels, 2) == 1).mean())
        assert after == pytest.approx(tuned["metrics"]["corrections_accuracy"])
        assert after >= before + 0.5 and after >= 0.9, (before, after)

        shipped = requests.get(f"{base}/models/mnist/versions/1", timeout=10).json()
        mnist = load_dataset("mnist", mnist_dir)
        _, held = split_indices(TrainingConfig(**shipped["training"]), mnist.train_y)
        truth = mnist.train_y[held]
        accuracy = {v: float((_labels(base, mnist.train_x[held], v) == truth).mean()) for v in (1, 2)}
        assert len(held) >= 10_000 and accuracy[2] >= accuracy[1] - 0.001, accuracy
        assert accuracy[2] == pytest.approx(tuned["metrics"]["held_out_accuracy"])
        robustness.record(
            "corrections",
            drawn_and_corrected=CORRECTIONS,
            read_as_seven=int(answered[7][1]),
            held_out_corrections=len(pixels),
            right_before=round(before * len(pixels)),
            right_after=round(after * len(pixels)),
            mnist_held_out=len(held),
            mnist_accuracy_before=round(accuracy[1], 5),
            mnist_accuracy_after=round(accuracy[2], 5),
            fine_tuning_seconds=round(tuned["train_seconds"], 1),
        )
        page.close()  # no page asks the service anything once it stops
        dashboard.close()


def test_with_corrections_turned_off_the_page_offers_none(service, pages):
    served = service(worker=False, feedback=False)
    page = pages.open(f"{served.url}/")
    draw(page, [[(140, 40), (140, 240)]])
    expect(page.get_by_test_id("model-used")).to_have_text("by mnist version 1")
    expect(page.get_by_test_id("correction")).to_be_hidden()
    refused = requests.post(f"{served.url}/feedback", json={"pixels": [0] * 784, "label": 1}, timeout=10)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "feedback_off"
