"""Drift: whether what a version answers in service still looks like what it answered on digits it
never trained on.

At training time every saved version records a **reference** (``reference``): on its held-out
digits, the share of each predicted label, the share of answers in each confidence bucket (the top
probability), and the out-of-distribution threshold: the top probability below which 1% of those
digits fall (the maximum-softmax-probability score: no more work than the answer itself).

While serving, with BACKPROP_DRIFT on, each answer is counted by label, confidence bucket and
whether it falls below the threshold (for Prometheus in ``service.api.metrics``, and by the minute in
``service.drift_window``), and ``compare`` sets a recent window of those counts against the
reference: the population stability index (PSI) of labels and of confidence, and the share of
answers below the threshold against the reference's 1%.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, Field

# Upper edges of the confidence buckets (the last takes everything up to 1.0).
CONFIDENCE_EDGES = (0.5, 0.7, 0.9, 0.99, 0.999, 1.0)
BUCKET_NAMES = tuple(f"le_{edge}" for edge in CONFIDENCE_EDGES)
OOD_QUANTILE = 0.01
PSI_WATCH, PSI_DRIFTING = 0.1, 0.25  # the usual reading of a PSI: below 0.1 stable, above 0.25 shifted
OOD_WATCH, OOD_DRIFTING = 2.0, 5.0  # the window's share below the threshold over the reference's
MIN_PREDICTIONS = 200
_EPSILON = 1e-4  # an empty bucket on either side would make the PSI infinite


def buckets(top: np.ndarray) -> np.ndarray:
    """The confidence bucket (0..len(CONFIDENCE_EDGES)-1) of each top probability (N,)."""
    return np.minimum(np.searchsorted(CONFIDENCE_EDGES, top, side="left"), len(CONFIDENCE_EDGES) - 1)


def reference(probabilities: np.ndarray) -> dict[str, Any]:
    """The reference of a version from its answers (N, classes) on held-out digits."""
    classes = probabilities.shape[1]
    labels = probabilities.argmax(axis=1)
    top = probabilities.max(axis=1)
    return {
        "samples": int(len(labels)),
        "labels": (np.bincount(labels, minlength=classes) / len(labels)).round(6).tolist(),
        "confidence": (np.bincount(buckets(top), minlength=len(BUCKET_NAMES)) / len(top)).round(6).tolist(),
        "confidence_buckets": list(BUCKET_NAMES),
        "ood_score": "top probability",
        "ood_threshold": float(np.quantile(top, OOD_QUANTILE)),
        "ood_share": OOD_QUANTILE,
    }


def psi(expected: list[float], observed: np.ndarray) -> float:
    """Population stability index of ``observed`` counts against ``expected`` shares."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), _EPSILON)
    o = np.maximum(observed / max(observed.sum(), 1.0), _EPSILON)
    return float(np.sum((o - e) * np.log(o / e)))


class Thresholds(BaseModel):
    psi_watch: float = PSI_WATCH
    psi_drifting: float = PSI_DRIFTING
    ood_ratio_watch: float = OOD_WATCH
    ood_ratio_drifting: float = OOD_DRIFTING
    minimum_predictions: int = MIN_PREDICTIONS


class DriftReport(BaseModel):
    """A window of a version's answers against its reference."""

    model: str
    version: int
    predictions: int = Field(description="answers counted in the window")
    labels_psi: float | None = Field(description="PSI of the predicted labels against the reference")
    confidence_psi: float | None = Field(description="PSI of the confidence buckets")
    ood_share: float | None = Field(description="share of answers below the reference's OOD threshold")
    reference_ood_share: float
    status: str = Field(description="ok, watch or drifting")
    reasons: list[str] = Field(description="what set the status, in words")
    thresholds: Thresholds = Field(default_factory=Thresholds)
    window_seconds: int = Field(description="the answers of this many seconds (whole minutes) were counted")


def compare(
    model: str, version: int, ref: dict[str, Any], counts: dict[str, np.ndarray], window_seconds: int
) -> DriftReport:
    """``counts``: ``labels`` (classes,), ``confidence`` (buckets,), ``ood`` (1,) of the window."""
    limits = Thresholds()
    total = int(counts["labels"].sum())
    if total < limits.minimum_predictions:
        return DriftReport(
            model=model,
            version=version,
            predictions=total,
            labels_psi=None,
            confidence_psi=None,
            ood_share=None,
            reference_ood_share=ref["ood_share"],
            status="watch",
            reasons=[f"{total} predictions counted; a status needs {limits.minimum_predictions}"],
            window_seconds=window_seconds,
        )
    labels_psi = psi(ref["labels"], counts["labels"])
    confidence_psi = psi(ref["confidence"], counts["confidence"])
    ood_share = float(counts["ood"].sum()) / total
    ratio = ood_share / ref["ood_share"]
    reasons, level = [], 0
    for name, value in (("labels", labels_psi), ("confidence", confidence_psi)):
        if value >= limits.psi_drifting:
            reasons.append(f"PSI of {name} {value:.3f}, at least {limits.psi_drifting}")
            level = 2
        elif value >= limits.psi_watch:
            reasons.append(f"PSI of {name} {value:.3f}, at least {limits.psi_watch}")
            level = max(level, 1)
    if ratio >= limits.ood_ratio_watch:
        drifting = ratio >= limits.ood_ratio_drifting
        reasons.append(
            f"{ood_share:.1%} of answers are below the reference's out-of-distribution threshold "
            f"({ratio:.1f}x its {ref['ood_share']:.0%})"
        )
        level = max(level, 2 if drifting else 1)
    if not reasons:
        reasons.append("labels, confidence and out-of-distribution share are as on the held-out digits")
    return DriftReport(
        model=model,
        version=version,
        predictions=total,
        labels_psi=round(labels_psi, 4),
        confidence_psi=round(confidence_psi, 4),
        ood_share=round(ood_share, 4),
        reference_ood_share=ref["ood_share"],
        status=("ok", "watch", "drifting")[level],
        reasons=reasons,
        window_seconds=window_seconds,
    )
