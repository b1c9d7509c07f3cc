"""Liveness, readiness and metrics."""

from __future__ import annotations

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from service.api.schemas import Health, Ready, error_responses
from service.api.state import service_state
from service.errors import BackpropError, NotReady

bp = APIBlueprint("health", __name__, abp_tags=[Tag(name="operations", description="health and metrics")])


@bp.get("/healthz", responses={200: Health, **error_responses(422)})
def healthz():
    """The process is alive; whether training and changing models need the API token (so that a
    client, such as the dashboard, can ask for it up front), whether drift is counted and whether
    corrections are taken."""
    settings = service_state().settings
    return {
        "status": "ok",
        "token_required": settings.api_token is not None,
        "drift_counted": settings.drift,
        "feedback_accepted": settings.feedback,
    }


@bp.get("/readyz", responses={200: Ready, **error_responses(422, 503)})
def readyz():
    """The default model is loaded and a test prediction passes; how many training workers are
    alive is said too (predictions never need them, so it does not decide readiness)."""
    state = service_state()
    try:
        model = state.registry.ready()
    except BackpropError as exc:
        raise NotReady(f"not ready: {exc.message}") from exc
    return {
        "status": "ready",
        "model": {"name": model.name, "version": model.version},
        "training_workers": state.jobs.workers_alive(),
    }


@bp.get("/metrics", responses={200: None, **error_responses(422)})
def metrics():
    """Prometheus text format, aggregated over all worker processes."""
    body, content_type = service_state().metrics.render()
    return Response(body, content_type=content_type)
