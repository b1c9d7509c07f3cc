"""A training job's learning curves as an SVG image: the loss, and the training and validation
accuracy, per epoch. Plain SVG text, like the heat maps: any browser or report shows it."""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH, PANEL, MARGIN_LEFT, MARGIN_RIGHT, TOP, GAP = 520, 170, 56, 16, 36, 56
TRAIN, VALIDATION = "#1f5fa8", "#b3470f"  # contrast of at least 4.5:1 on white, legends included


def _scale(value: float, low: float, high: float, pixels: float) -> float:
    return 0.0 if high == low else (value - low) / (high - low) * pixels


def _panel(
    top: float,
    title: str,
    series: list[tuple[str, str, list[tuple[int, float]]]],
    epochs: int,
    *,
    percent: bool,
) -> list[str]:
    """One chart: ``series`` of (name, colour, [(epoch, value)]) over epochs 1..``epochs``."""
    width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    values = [v for _, _, points in series for _, v in points]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if percent:
        low, high = min(low, 0.9), 1.0
    else:
        low, high = 0.0, max(high, 1e-9)
    parts = [
        f'<text x="{MARGIN_LEFT}" y="{top - 10}" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{MARGIN_LEFT}" y="{top}" width="{width}" height="{PANEL}" fill="none" stroke="#767676"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = low + fraction * (high - low)
        y = top + PANEL - fraction * PANEL
        label = f"{value * 100:.1f}%" if percent else f"{value:.3g}"
        parts.append(
            f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{label}</text>'
        )
    for epoch in sorted({1, epochs}):
        x = MARGIN_LEFT + _scale(epoch, 1, max(epochs, 1), width)
        parts.append(
            f'<text x="{x:.1f}" y="{top + PANEL + 15}" font-size="11" text-anchor="middle">{epoch}</text>'
        )
    legend_x = MARGIN_LEFT + width
    for i, (name, colour, points) in enumerate(series):
        xs = [MARGIN_LEFT + _scale(e, 1, max(epochs, 1), width) for e, _ in points]
        ys = [top + PANEL - _scale(v, low, high, PANEL) for _, v in points]
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
        dash = ' stroke-dasharray="6 3"' if i else ""
        if len(points) == 1:
            parts.append(f'<circle cx="{xs[0]:.1f}" cy="{ys[0]:.1f}" r="3" fill="{colour}"/>')
        elif points:
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
            )
        parts.append(
            f'<text x="{legend_x}" y="{top - 10 - 14 * i}" font-size="11" text-anchor="end" '
            f'fill="{colour}">{escape(name)}</text>'
        )
    return parts


def curves_svg(history: list[dict[str, Any]], *, title: str) -> str:
    """SVG of a job's per-epoch ``history`` (``epoch``, ``loss``, ``train_accuracy``,
    ``val_accuracy``, the last two possibly null)."""

    def points(key: str) -> list[tuple[int, float]]:
        return [(int(h["epoch"]), float(h[key])) for h in history if h.get(key) is not None]

    epochs = max((int(h["epoch"]) for h in history), default=0)
    height = TOP + 2 * PANEL + GAP + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" font-family="sans-serif">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
    ]
    if not history:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{height / 2}" font-size="14" text-anchor="middle">'
            "no epoch has finished yet</text>"
        )
    else:
        parts += _panel(TOP, "loss", [("training loss", TRAIN, points("loss"))], epochs, percent=False)
        accuracy = [
            ("training", TRAIN, points("train_accuracy")),
            ("validation", VALIDATION, points("val_accuracy")),
        ]
        parts += _panel(TOP + PANEL + GAP, "accuracy", accuracy, epochs, percent=True)
        parts.append(
            f'<text x="{WIDTH / 2}" y="{height - 4}" font-size="11" text-anchor="middle">epoch</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
