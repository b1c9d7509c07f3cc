"""Drawing on the draw page's pad with a real browser's mouse or touch, as people draw: the strokes
of the page tests."""

from __future__ import annotations

import math

PAD = 280  # the canvas's own pixels


def arc(cx, cy, rx, ry, start=0.0, end=360.0, n=36) -> list[tuple[float, float]]:
    angles = [math.radians(start + (end - start) * i / n) for i in range(n + 1)]
    return [(cx + rx * math.sin(a), cy - ry * math.cos(a)) for a in angles]


# Strokes as people draw them, in the pad's pixels; each a list of points.
DIGITS = {
    0: [arc(140, 140, 60, 95)],
    1: [[(140, 40), (140, 240)]],
    2: [arc(140, 95, 60, 55, -80, 120, 20) + [(80, 240), (210, 240)]],
    3: [arc(135, 90, 55, 50, -60, 180, 24) + arc(135, 190, 60, 50, 0, 240, 24)],
    4: [[(160, 40), (70, 170), (215, 170)], [(170, 90), (170, 245)]],
    7: [[(70, 50), (210, 50), (120, 240)]],
    8: [arc(140, 85, 45, 45, 180, 540, 30) + arc(140, 190, 55, 55, 0, 360, 30)],
}


def draw(page, strokes) -> None:
    """Draw with the mouse; returns once the prediction of the last stroke has arrived."""
    box = page.locator("#pad").bounding_box()
    scale = box["width"] / PAD
    for stroke in strokes:
        (x, y), rest = stroke[0], stroke[1:]
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=2)
        with page.expect_response(lambda r: "/predict" in r.url and r.request.method == "POST"):
            page.mouse.up()


def draw_by_touch(page, strokes) -> None:
    """Draw with a finger: real touch events (Chrome DevTools Protocol), as a phone sends them."""
    box = page.locator("#pad").bounding_box()
    scale = box["width"] / PAD
    touch = page.context.new_cdp_session(page)

    def send(kind: str, points) -> None:
        touched = [{"x": box["x"] + x * scale, "y": box["y"] + y * scale} for x, y in points]
        touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": touched})

    for stroke in strokes:
        send("touchStart", stroke[:1])
        for point in stroke[1:]:
            send("touchMove", [point])
        with page.expect_response(lambda r: "/predict" in r.url and r.request.method == "POST"):
            send("touchEnd", [])
    touch.detach()


def prediction(page) -> str:
    return page.get_by_test_id("prediction").inner_text()
