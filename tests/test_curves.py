"""The learning curves as an SVG image."""

import xml.etree.ElementTree as ET

from service.curves import curves_svg

SVG = "{http://www.w3.org/2000/svg}"


def _history(epochs: int, *, validation: bool = True) -> list[dict]:
    return [
        {
            "epoch": e,
            "loss": 2.0 / e,
            "train_accuracy": 1 - 0.5 / e,
            "val_accuracy": (1 - 0.6 / e) if validation else None,
            "seconds": 0.1,
        }
        for e in range(1, epochs + 1)
    ]


def test_one_line_per_series_over_every_epoch():
    root = ET.fromstring(curves_svg(_history(5), title="job <abc> & co"))
    assert root.get("role") == "img" and root.get("aria-label") == "job <abc> & co"
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 3  # loss, training accuracy, validation accuracy
    assert all(len(line.get("points").split()) == 5 for line in lines)
    # the loss falls: its line goes down the picture (y grows) from epoch 1 to 5
    loss = [tuple(map(float, p.split(","))) for p in lines[0].get("points").split()]
    assert [x for x, _ in loss] == sorted(x for x, _ in loss) and loss[0][1] < loss[-1][1]
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"loss", "accuracy", "training", "validation", "epoch"} <= set(texts)


def test_without_validation_or_epochs():
    root = ET.fromstring(curves_svg(_history(3, validation=False), title="t"))
    assert len(root.findall(f"{SVG}polyline")) == 2
    root = ET.fromstring(curves_svg(_history(1), title="t"))
    assert len(root.findall(f"{SVG}circle")) == 3 and not root.findall(f"{SVG}polyline")
    empty = ET.fromstring(curves_svg([], title="t"))
    assert "no epoch has finished yet" in [t.text for t in empty.iter(f"{SVG}text")]
