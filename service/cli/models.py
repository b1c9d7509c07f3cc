"""``backprop predict`` and ``explain``: a stored model (or a running service) on pictures."""

from __future__ import annotations

import argparse

import numpy as np

from service.cli.common import options_given, said_by_service, store_of, writable_folder, write_file
from service.reporters import emit
from service.settings import Settings


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
    from service.images import load_images

    pixels = load_images(args.file)
    if args.url:
        from service.client import ApiError, Client

        try:
            answer = Client(args.url).predict(pixels, model=args.model, version=args.version)
        except ApiError as exc:
            raise said_by_service(exc, args.url) from exc
        model, version = answer.model, answer.version
        probabilities = np.array(answer.probabilities)
        names = [str(i) for i in range(probabilities.shape[1])]
    else:
        network, meta = store_of(args, settings).load(args.model, args.version)
        probabilities = network.freeze().predict_proba(network.normalize(pixels))
        model, version, names = meta["name"], meta["version"], network.spec.class_names
    for i, row in enumerate(probabilities):
        label = int(row.argmax())
        if args.json:
            emit(
                {
                    "index": i,
                    "label": label,
                    "class": names[label],
                    "probabilities": row.round(6).tolist(),
                    "model": model,
                    "version": version,
                }
            )
        else:
            which = f"image {i}: " if len(probabilities) > 1 else ""
            print(f"{which}label {names[label]} ({row[label]:.1%}), by {model} v{version}")
    return 0


def cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    from service.explaining import ExplainOptions, caption, explain_images
    from service.heatmap import heatmap_svg
    from service.images import load_images
    from service.registry import LoadedModel

    how = options_given(args, ExplainOptions)  # a wrong option is said before anything is read
    if args.svg:
        writable_folder(args.svg.parent, "heat maps", make=False)
    pixels = load_images(args.file)
    network, meta = store_of(args, settings).load(args.model, args.version)
    model = LoadedModel(meta["name"], meta["version"], network, meta)
    for i, explanation in enumerate(explain_images(model, pixels, how)):
        svg_path = None
        if args.svg:
            svg_path = args.svg if len(pixels) == 1 else args.svg.with_stem(f"{args.svg.stem}-{i}")
            attributions = np.asarray(explanation["attributions"])
            svg = heatmap_svg(pixels[i], attributions, caption=caption(model, explanation, how.method))
            write_file(svg_path, svg.encode())
        if args.json:
            emit(
                {
                    "index": i,
                    "model": model.name,
                    "version": model.version,
                    "method": how.method,
                    **explanation,
                }
            )
            continue
        attributions = np.asarray(explanation["attributions"]).reshape(28, 28)
        row, col = np.unravel_index(np.abs(attributions).argmax(), attributions.shape)
        print(
            f"{i}: {caption(model, explanation, how.method)}; strongest pixel at row {row}, column {col}"
            + (f"; heat map in {svg_path}" if svg_path else "")
        )
    return 0
