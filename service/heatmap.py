"""An explanation as a picture: a digit's attributions as an SVG heat map over the digit.

Red cells pushed the score up, blue ones down, the stronger the more opaque; the digit shows in
grey beneath. Plain SVG text: no imaging library, and any browser or report shows it.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np

CELL = 12  # pixels of the picture per pixel of the digit
CAPTION = 40


def heatmap_svg(pixels: np.ndarray, attributions: np.ndarray, *, caption: str) -> str:
    """SVG of one digit ``pixels`` (D,), 0-255, under its ``attributions`` (D,), D a square."""
    side = math.isqrt(len(pixels))
    if side * side != len(pixels) or attributions.shape != pixels.shape:
        raise ValueError("heat maps need a square image and one attribution per pixel")
    size = side * CELL
    strongest = float(np.abs(attributions).max()) or 1.0
    cells = []
    for index, (ink, weight) in enumerate(zip(pixels.tolist(), attributions.tolist(), strict=True)):
        row, col = divmod(index, side)
        x, y = col * CELL, row * CELL
        grey = 255 - int(round(float(ink)))
        cells.append(
            f'<rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" fill="rgb({grey},{grey},{grey})"/>'
        )
        opacity = abs(weight) / strongest
        if opacity >= 0.02:
            colour = "#d7191c" if weight > 0 else "#2c7bb6"
            cells.append(
                f'<rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" fill="{colour}"'
                f' fill-opacity="{opacity:.2f}"/>'
            )
    text = escape(caption)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size + CAPTION}"'
        f' viewBox="0 0 {size} {size + CAPTION}" role="img" aria-label="{text}">'
        f"<title>{text}</title>"
        f'<rect width="{size}" height="{size + CAPTION}" fill="white"/>'
        + "".join(cells)
        + f'<text x="{size / 2}" y="{size + 16}" font-family="sans-serif" font-size="13"'
        f' text-anchor="middle">{text}</text>'
        f'<text x="{size / 2}" y="{size + 33}" font-family="sans-serif" font-size="11"'
        f' text-anchor="middle" fill="#555">red: pushed the score up, blue: down</text>'
        "</svg>"
    )
