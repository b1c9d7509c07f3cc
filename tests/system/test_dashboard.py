"""The dashboard in a real browser (Debian's Chromium through Playwright), against a real
``backprop serve`` of each test's own: training from it, with a token and without, making a version
the default (and the draw page following it), and traffic policies."""

from __future__ import annotations

import re
import time

import numpy as np
import requests
from playwright.sync_api import expect

from tests.model_files import good_model
from tests.system.drawing import DIGITS, draw
from tests.system.processes import AUTH, train_and_wait


def test_a_job_started_from_the_dashboard_shows_its_progress_and_curves(server, pages, screenshots):
    base, _ = server
    page = pages.open(f"{base}/dashboard")
    assert page.get_by_test_id("jobs").inner_text() == ""
    page.get_by_label("Model name").fill("dashboard")
    page.get_by_label("Hidden layers").fill("64")
    page.get_by_label("Epochs").fill("4")
    # The server wants its token (it says so on /healthz): the page asks for it before sending
    token = page.get_by_label("Token", exact=True)
    token.wait_for()
    page.get_by_role("button", name="Start training").click()
    assert "needs its API token" in page.locator("#train-status").inner_text()
    assert page.evaluate("document.activeElement.id") == "token"
    assert page.get_by_test_id("jobs").inner_text() == ""
    from tests.conftest import TOKEN

    token.fill(TOKEN)
    page.get_by_label("Epochs").press("Enter")  # submitting from the keyboard
    job = page.get_by_test_id("job").first
    job.wait_for()
    statuses = set()
    deadline = time.monotonic() + 120
    while "succeeded" not in statuses and time.monotonic() < deadline:
        statuses.add(job.get_by_test_id("job-status").inner_text())
        page.wait_for_timeout(100)
    assert "succeeded" in statuses and statuses & {"queued", "running"}, statuses
    assert "epoch 4 of 4" in job.inner_text() and "made dashboard version 1" in job.inner_text()
    curves = job.get_by_test_id("curves")
    drawn = "img => img.complete && img.naturalWidth > 0 && img.src.includes('epochs=4')"
    page.wait_for_function(drawn, arg=curves.element_handle())
    svg = requests.get(base + curves.get_attribute("src"), timeout=5).text
    assert svg.count("<polyline") == 3 and "4 of 4 epochs, succeeded" in svg
    # the new model appears in the models table, with its metrics
    row = page.locator('[data-testid="version"][data-model="dashboard"]')
    row.wait_for()
    assert "%" in row.inner_text()
    page.screenshot(path=screenshots / "dashboard.png", full_page=True)


def test_making_a_version_the_default_changes_what_the_draw_page_uses(server, pages):
    base, _ = server
    train_and_wait(base)  # mnist version 2
    uploaded = requests.post(  # mnist version 3, trained elsewhere: nothing to judge its answers by
        f"{base}/models/mnist/versions",
        data=good_model(hidden=(8,)),
        headers={**AUTH, "Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert uploaded.status_code == 201 and uploaded.json()["version"] == 3
    draw_page = pages.open(f"{base}/")
    draw(draw_page, DIGITS[1])
    expect(draw_page.get_by_test_id("model-used")).to_have_text("by mnist version 1")  # shown once it came

    page = pages.open(f"{base}/dashboard")
    button = page.get_by_role("button", name="Make default: mnist version 2")
    button.click()
    assert "needs its API token" in page.locator("#models-status").inner_text()
    from tests.conftest import TOKEN

    page.get_by_label("Token", exact=True).fill(TOKEN)
    button.focus()
    page.keyboard.press("Enter")
    page.locator("#models-status").get_by_text("mnist version 2 is now the default").wait_for()
    version_2 = page.locator('[data-testid="version"][data-model="mnist"][data-version="2"]')
    expect(version_2.locator("td").last).to_have_text("default")
    # Trained here, so judged against its held-out digits: too few answers yet for a status.
    expect(version_2.get_by_test_id("drift")).to_have_text("watch, 0 answers")
    assert "a status needs 200" in version_2.get_by_test_id("drift").get_attribute("title")
    version_1 = page.locator('[data-testid="version"][data-model="mnist"][data-version="1"]')
    expect(version_1.get_by_test_id("drift")).to_have_text(re.compile(r"^watch, [1-9]\d* answers$"))  # drawn
    version_3 = page.locator('[data-testid="version"][data-model="mnist"][data-version="3"]')
    expect(version_3.get_by_test_id("drift")).to_have_text("no reference")

    draw_page.reload()
    draw(draw_page, DIGITS[1])
    # gunicorn's workers re-read the default within BACKPROP_DEFAULT_REFRESH_SECONDS
    deadline = time.monotonic() + 10
    used = draw_page.get_by_test_id("model-used")
    while "version 2" not in used.inner_text() and time.monotonic() < deadline:
        draw_page.get_by_role("button", name="Undo").click()
        draw(draw_page, DIGITS[1])
    expect(draw_page.get_by_test_id("model-used")).to_have_text("by mnist version 2")


def test_without_a_token_the_dashboard_trains_at_once_and_rests_when_hidden(
    tmp_path, store_dir, mnist5k_dir, pages
):
    from tests.system.processes import Service

    service = Service(tmp_path, model_store=store_dir, data_dir=mnist5k_dir, api_token=None)
    try:
        service.start()
        page = pages.open(f"{service.url}/dashboard", fake_clock=True)
        page.wait_for_load_state("networkidle")
        expect(page.locator("#token-card")).to_be_hidden()
        page.get_by_label("Hidden layers").fill("16")
        page.get_by_label("Epochs").fill("2")
        page.get_by_role("button", name="Start training").click()
        expect(page.get_by_test_id("job-status").first).to_have_text("succeeded", timeout=120_000)

        # A hidden tab stops polling the jobs; shown again, it polls at once. The page's clock is
        # paused and run by hand, so that seconds of polling pass at once.
        polls = []
        page.on("request", lambda r: "/jobs?" in r.url and polls.append(r.url))
        page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 0.01)  # seconds
        page.wait_for_timeout(300)  # a poll already sent is answered and sets its next timer
        shown = len(polls)
        page.clock.run_for(4100)  # one idle interval: the page polls as usual while shown
        page.wait_for_timeout(300)
        assert len(polls) == shown + 1, polls
        page.evaluate(
            "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
            "document.dispatchEvent(new Event('visibilitychange'))"
        )
        hidden = len(polls)
        page.clock.run_for(4100)  # the timer set before it was hidden may still fire, once
        page.wait_for_timeout(300)
        before = len(polls)
        page.clock.run_for(12_000)  # three idle intervals
        page.wait_for_timeout(300)
        assert len(polls) == before <= hidden + 1
        page.evaluate(
            "Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
            "document.dispatchEvent(new Event('visibilitychange'))"
        )
        page.wait_for_timeout(500)
        assert len(polls) > before
    finally:
        service.close()


def test_the_dashboard_sets_a_traffic_policy_and_shows_its_verdict(server, pages, screenshots):
    from tests.conftest import TOKEN
    from tests.model_files import good_model

    base, _ = server
    upload = requests.post(
        f"{base}/models/mnist/versions",
        data=good_model(hidden=(8,)),  # untrained: it disagrees with the shipped model
        headers={**AUTH, "Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert upload.status_code == 201, upload.text
    page = pages.open(f"{base}/dashboard")
    page.get_by_label("Token", exact=True).wait_for(state="attached")
    policy = page.locator('.traffic-model[data-model="mnist"] [data-testid="traffic-policy"]')
    expect(policy).to_contain_text("No policy")
    page.get_by_label("Split (version:weight …) for mnist").fill("1:100")
    page.get_by_label("Shadow version (optional) for mnist").fill("2")
    page.get_by_role("button", name="Set the policy of mnist").click()
    assert "needs its API token" in page.locator("#traffic-status").inner_text()
    page.get_by_label("Token", exact=True).fill(TOKEN)
    page.get_by_role("button", name="Set the policy of mnist").click()
    expect(page.locator("#traffic-status")).to_have_text("The traffic policy of mnist is set.")
    expect(policy).to_contain_text("split v1: 100 · shadow v2 on 100.0% of requests")

    digits = np.random.default_rng(0).integers(0, 256, (20, 784))
    for row in digits:
        answer = requests.post(f"{base}/predict", json={"pixels": row.tolist()}, timeout=10)
        assert answer.json()["model"]["version"] == 1
    page.reload()
    shadow_row = page.locator(
        '.traffic-model[data-model="mnist"] [data-testid="traffic-figures"] tr[data-version="2"]'
    )
    expect(shadow_row).to_contain_text("of 20", timeout=15_000)
    expect(page.get_by_test_id("disagreement").first).to_be_visible()
    page.locator('.traffic-model[data-model="mnist"]').screenshot(path=screenshots / "dashboard-traffic.png")
    page.get_by_role("button", name="Clear the policy of mnist").click()
    expect(page.locator("#traffic-status")).to_have_text("The traffic policy of mnist is cleared.")
    expect(policy).to_contain_text("No policy")
