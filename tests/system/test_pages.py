"""The two pages in a real browser (Debian's Chromium through Playwright), against a real
``backprop serve``: drawing digits, keyboard use, phone-sized screens, the API's docs, a model name
refused before anything is sent, and an automated accessibility check (axe-core, vendored). The
dashboard's tests that change the service: test_dashboard.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from tests.system.drawing import DIGITS, draw, draw_by_touch, prediction
from tests.system.processes import AUTH, train_and_wait, wait_until

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


def _accessibility_violations(page) -> list[dict]:
    page.add_script_tag(content=AXE.read_text())
    return page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations.map(
            v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))"""
    )


def test_both_pages_pass_an_accessibility_check(server, pages, robustness):
    base, _ = server
    train_and_wait(base, model="checked")
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
        train_and_wait(base)
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
