"""Classifying pixels with the version a request gets: the one it names, or, when it names none,
the one the model's traffic policy picks (``service.traffic``), whose answer and failures count
toward the verdict. A shadow runs after the answer is sent: ``classify`` hands it back as a
callable for the response's close (Flask's ``call_on_close``, the fast lane's closing iterator).

With BACKPROP_CAPTURE_FRACTION, a sampled request's first images are kept with their answers
(``service.feedback``), also after the answer is sent. Used by ``/predict`` (the draw page's
requests included) and the protocol's infer, in the fast lane and in Flask alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from service import drift
from service.api import access
from service.api.state import ServiceState
from service.errors import ModelUnavailable
from service.images import grey_levels
from service.registry import LoadedModel
from service.traffic.router import Header

After = Callable[[], None] | None
KEPT_PER_REQUEST = 16  # images of one request kept with BACKPROP_CAPTURE_FRACTION: a bounded write


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
    fraction = state.settings.capture_fraction
    if fraction and state.capture_rng.random() < fraction:
        request = access.sane_request_id(header("X-Request-ID"))
        keep = functools.partial(_keep, state, model, pixels, probabilities, unit, request)
        after = keep if after is None else _one_after_the_other(after, keep)
    return model, probabilities, after


def _keep(
    state: ServiceState,
    model: LoadedModel,
    pixels: np.ndarray,
    probabilities: np.ndarray,
    unit: bool,
    request: str,
) -> None:
    """Keep the request's first images with their answers, once the answer is sent."""
    images = grey_levels(pixels[:KEPT_PER_REQUEST], unit=unit)
    state.feedback.capture(images, probabilities[:KEPT_PER_REQUEST], model.name, model.version, request)


def _one_after_the_other(first: Callable[[], None], second: Callable[[], None]) -> Callable[[], None]:
    def both() -> None:
        try:
            first()
        finally:
            second()

    return both


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
