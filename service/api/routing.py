"""Classifying pixels with the version a request gets: the one it names, or, when it names none,
the one the model's traffic policy picks (``service.traffic``), whose answer and failures count
toward the verdict. A shadow runs after the answer is sent: ``classify`` hands it back as a
callable for the response's close (Flask's ``call_on_close``, the fast lane's closing iterator).

Used by ``/predict`` (the draw page's requests included) and the protocol's infer, in the fast
lane and in Flask alike.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from service import drift
from service.api.state import ServiceState
from service.errors import ModelUnavailable
from service.registry import LoadedModel
from service.traffic.router import Header

After = Callable[[], None] | None


def no_header(_name: str) -> str | None:
    return None


def classify(
    state: ServiceState,
    pixels: np.ndarray,
    name: str | None,
    version: int | None,
    *,
    unit: bool = False,
    header: Header = no_header,
) -> tuple[LoadedModel, np.ndarray, After]:
    """(the model that answered, its probabilities (N, classes), the shadow to run after the answer);
    the answers counted for drift when BACKPROP_DRIFT is on."""
    with state.tracing.span("forward pass", **{"backprop.images": len(pixels)}) as span:
        model, probabilities, after = _classify(state, pixels, name, version, unit=unit, header=header)
        if span is not None:
            span.set_attributes({"backprop.model": model.name, "backprop.version": model.version})
    if state.settings.drift:
        _count_drift(state, model, probabilities)
    return model, probabilities, after


def _count_drift(state: ServiceState, model: LoadedModel, probabilities: np.ndarray) -> None:
    top = probabilities.max(axis=1)
    pairs = np.stack([probabilities.argmax(axis=1), drift.buckets(top)], axis=1)
    reference = model.metadata.get("drift_reference")
    beyond = 0
    if reference:
        beyond = int((top < reference["ood_threshold"]).sum())
        state.metrics.show_reference(model.name, model.version, reference)
    state.metrics.count_drift(model.name, model.version, probabilities.shape[1], pairs, beyond)


def _classify(
    state: ServiceState,
    pixels: np.ndarray,
    name: str | None,
    version: int | None,
    *,
    unit: bool = False,
    header: Header = no_header,
) -> tuple[LoadedModel, np.ndarray, After]:
    if version is not None:
        model = state.registry.get(name, version)
        return model, model.predict(pixels, unit_scale=unit), None
    route = state.router.route(name or state.registry.default_model(), header)
    if route.revision is None:
        model = state.registry.get(route.name, None)
        return model, model.predict(pixels, unit_scale=unit), None
    try:
        model = state.registry.get(route.name, route.version, pinned=True)
    except ModelUnavailable as exc:  # the version's files are damaged: it fails, and is judged
        state.verdicts.failed(route, route.version, exc.message)
        raise
    probabilities = model.predict(pixels, unit_scale=unit)
    state.verdicts.answered(route, probabilities)
    if route.shadow is None:
        return model, probabilities, None
    answered = model.version
    return model, probabilities, lambda: state.shadows.put(route, answered, pixels, probabilities, unit)
