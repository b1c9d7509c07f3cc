"""Explaining a model's predictions for people and programs: the one flow of ``POST /explain``,
``GET /explain/heatmap.svg`` and ``backprop explain``."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from service.errors import InvalidInput
from service.json_types import json_int
from service.nn.explain import DEFAULT_STEPS, Method, Score, explain
from service.registry import LoadedModel


class ExplainOptions(BaseModel):
    """How to explain: the method, the class whose score to explain, and the method's effort. The
    one declaration of these options: the API's request and query models extend it, and
    ``backprop explain``'s flags are generated from it."""

    model_config = ConfigDict(extra="forbid")

    method: Method = Field(
        "integrated_gradients",
        description="integrated_gradients (attributions adding up to the score's change from a black "
        "image), gradient (the score's gradient per pixel), or smoothgrad (gradients over noisy copies)",
    )
    target: json_int(ge=0, le=9) | None = Field(
        None, description="the class whose score to explain; default: the predicted class"
    )
    score: Score = Field("logit", description="the class's logit, or its log-probability")
    steps: json_int(ge=1, le=512) = Field(DEFAULT_STEPS, description="integrated gradients' Riemann steps")
    samples: json_int(ge=1, le=256) = Field(32, description="smoothgrad's noisy copies per image")
    noise: float = Field(0.15, ge=0, le=1, strict=True, description="smoothgrad's noise std / 255")
    seed: json_int(ge=0, lt=2**32) = Field(0, description="smoothgrad's noise seed")


def explain_images(
    model: LoadedModel, pixels: np.ndarray, how: ExplainOptions, *, unit_scale: bool = False
) -> list[dict]:
    """One explanation per image of ``pixels`` (N, 784): label, target, probabilities, attributions
    (784 per image, in pixel units) and, for integrated gradients, the score change they add up to."""
    classes = model.network.spec.num_classes
    if how.target is not None and how.target >= classes:
        msg = f"must be a class of the model, 0 to {classes - 1}, got {how.target}"
        raise InvalidInput.at(["target"], msg, "range")
    raw = np.asarray(pixels, dtype=np.float64) * (255.0 if unit_scale else 1.0)
    probabilities = model.predict(pixels, unit_scale=unit_scale)
    labels = probabilities.argmax(axis=1)
    targets = labels if how.target is None else np.full(len(labels), how.target)
    attributions, change = explain(
        model.network,
        raw,
        targets,
        method=how.method,
        score=how.score,
        steps=how.steps,
        samples=how.samples,
        noise=how.noise,
        rng=np.random.default_rng(how.seed),
    )
    return [
        {
            "label": int(labels[i]),
            "target": int(targets[i]),
            "probabilities": probabilities[i].tolist(),
            "attributions": attributions[i].astype(np.float32).tolist(),
            "score_change": None if change is None else float(change[i]),
        }
        for i in range(len(labels))
    ]


def caption(model: LoadedModel, explanation: dict, method: str) -> str:
    """One line under a heat map: what was explained, and how."""
    target = explanation["target"]
    return (
        f"{model.name} v{model.version}: {explanation['label']}"
        f" ({explanation['probabilities'][explanation['label']]:.1%});"
        f" why class {target}, by {method.replace('_', ' ')}"
    )
