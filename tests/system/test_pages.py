"""The two pages in a real browser (Debian's Chromium through Playwright), against a real
``backprop serve``: drawing digits, training from the dashboard, making a version the default,
keyboard use, phone-sized screens, and an automated accessibility check (axe-core, vendored)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from playwright.sync_api import expect

from tests.model_files import good_model
from tests.system.drawing import DIGITS, draw, draw_by_touch, prediction
from tests.system.processes import AUTH, wait_until

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"


def test_drawn_digits_get_their_label_and_ten_bars(module_server, pages, screenshots):
    base, _ = module_server
    page = pages.open(f"{base}/")
    for digit, strokes in DIGITS.items():
        if page.get_by_role("button", name="Clear").is_enabled():
            page.get_by_role("button", name="Clear").click()
        draw(page, strokes)
        # The answer has arrived; the page shows it a moment later: expect waits for it.
        expect(page.get_by_test_id("prediction")).to_have_text(re.compile(rf"^{digit}"))
        bars = page.get_by_test_id("bar")
        assert bars.count() == 10
        assert bars.nth(digit).get_attribute("class") == "best"
        if digit == 4:
            page.screenshot(path=screenshots / "draw.png")
    assert page.get_by_test_id("model-used").inner_text() == "by mnist version 1"


def test_each_stroke_updates_the_prediction_and_undo_and_clear_work(module_server, pages):
    base, _ = module_server
    page = pages.open(f"{base}/")
    first, second = DIGITS[4]
    draw(page, [first])  # half a 4: some digit, and the bars already (once the answer is shown)
    expect(page.get_by_test_id("bar")).to_have_count(10)
    draw(page, [second])
    expect(page.get_by_test_id("prediction")).to_have_text(re.compile(r"^4"))
    with page.expect_response(lambda r: "/predict" in r.url):
        page.get_by_role("button", name="Undo").click()
    page.get_by_role("button", name="Undo").click()
    assert prediction(page) == "Nothing drawn yet" and page.get_by_test_id("bar").count() == 0
    assert page.get_by_role("button", name="Undo").is_disabled()
    draw(page, DIGITS[7])
    page.get_by_role("button", name="Clear").click()
    assert prediction(page) == "Nothing drawn yet"


def test_every_control_works_from_the_keyboard(module_server, pages, digit_png):
    base, _ = module_server
    page = pages.open(f"{base}/")
    draw(page, DIGITS[1])
    reached = set()
    for _ in range(24):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.id || document.activeElement.textContent"))
    assert {"undo", "clear", "model", "upload", "Draw", "Dashboard", *"0123456789"} <= reached
    page.get_by_role("button", name="It was a 1", exact=True).focus()  # "Wrong? It was:", by keyboard
    with page.expect_response(lambda r: r.url.endswith("/feedback")) as sent:
        page.keyboard.press("Enter")
    assert sent.value.status == 201
    expect(page.get_by_test_id("correction-status")).to_have_text(re.compile("saved as a 1"))
    page.locator("#clear").focus()
    page.keyboard.press("Enter")
    assert prediction(page) == "Nothing drawn yet"
    # Without a pointer: a picture of a digit, chosen with the file control
    path, label = digit_png
    with page.expect_response(lambda r: "/predict" in r.url):
        page.get_by_label("Or choose a picture of a digit").set_input_files(path)
    expect(page.get_by_test_id("prediction")).to_have_text(re.compile(rf"^{label}"))
    # Another model from the picker answers the next prediction
    page.get_by_label("Model").select_option("mnist@1")
    draw(page, DIGITS[7])
    expect(page.get_by_test_id("prediction")).to_have_text(re.compile(r"^7"))


def _train(base: str, **fields) -> str:
    body = {"dataset": "mnist", "hidden": [32], "epochs": 2, "batch_size": 128, **fields}
    job = requests.post(f"{base}/train", json=body, headers=AUTH, timeout=10).json()["id"]
    wait_until(
        lambda: requests.get(f"{base}/jobs/{job}", timeout=5).json()["status"] == "succeeded", 120, "job done"
    )
    return job


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
    _train(base)  # mnist version 2
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


def _accessibility_violations(page) -> list[dict]:
    page.add_script_tag(content=AXE.read_text())
    return page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations.map(
            v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))"""
    )


def test_both_pages_pass_an_accessibility_check(server, pages, robustness):
    base, _ = server
    _train(base, model="checked")
    requests.post(f"{base}/train", json={"epochs": 500, "model": "busy"}, headers=AUTH, timeout=10)
    found = {}
    for path in ("/", "/dashboard"):
        # axe is injected as a script, which the pages' own Content-Security-Policy forbids
        page = pages.open(f"{base}{path}", bypass_csp=True)
        if path == "/":
            draw(page, DIGITS[3])
        else:
            page.get_by_test_id("curves").first.wait_for()
            page.get_by_label("Token", exact=True).wait_for()
        violations = _accessibility_violations(page)
        found[path] = [f"{v['impact']}: {v['id']} ({v['help']}) at {v['nodes'][:3]}" for v in violations]
        assert not [v for v in violations if v["impact"] in ("serious", "critical")], found[path]
    robustness.record("accessibility", tool="axe-core 4.14.1", violations_by_page=found)


@pytest.mark.parametrize("path", ["/", "/dashboard"])
def test_a_phone_sized_screen_needs_no_sideways_scrolling(server, pages, screenshots, path):
    base, _ = server
    if path == "/dashboard":
        _train(base)
    page = pages.open(f"{base}{path}", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    if path == "/":
        draw_by_touch(page, DIGITS[2])
        expect(page.get_by_test_id("prediction")).to_have_text(re.compile(r"^2"))
        assert page.evaluate("window.scrollY") == 0  # the finger drew; it did not scroll the page
    else:
        page.get_by_test_id("curves").first.wait_for()
        # Polled from here: wait_for_function polls by eval, which the page's policy forbids.
        wait_until(
            lambda: page.evaluate("[...document.images].every(img => img.complete)"), 10, "images loaded"
        )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # nor does any part of it: the models table fits its card
    assert page.evaluate(
        "[...document.querySelectorAll('.table-wrap')].every(t => t.scrollWidth <= t.clientWidth)"
    )
    for control in page.locator("button:visible, input:visible, select:visible").all():
        box = control.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, control
    name = "draw" if path == "/" else "dashboard"
    page.screenshot(path=screenshots / f"{name}-phone.png", full_page=True)


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


def test_the_api_docs_are_swagger_ui_itself_under_the_pages_policy(module_server, pages):
    base, _ = module_server
    page = pages.open(f"{base}/docs/")  # a console error (a refused script, say) fails the test
    page.locator(".opblock").first.wait_for()
    assert page.locator(".opblock").count() >= 20


def test_a_name_the_store_refuses_is_refused_in_words_before_anything_is_sent(module_server, pages):
    from tests.conftest import TOKEN

    base, _ = module_server
    page = pages.open(f"{base}/dashboard")
    assert page.get_by_label("Hidden layers").input_value() == "512 256"  # the API's default
    sent = []
    page.on("request", lambda r: r.url.endswith("/train") and sent.append(r.url))
    page.get_by_label("Token", exact=True).fill(TOKEN)
    page.get_by_label("Model name").fill("MyDigits")
    page.get_by_role("button", name="Start training").click()
    expect(page.locator("#train-status")).to_have_text(
        "Not started: a model name is 1-64 lowercase letters, digits, '-', '_' or '.', "
        "starting with a letter or digit, with no '..'."
    )
    assert sent == [] and page.evaluate("document.activeElement.id") == "model-name"


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
