"""POST /train, GET /jobs, GET /jobs/ID, POST /jobs/ID/cancel."""

from __future__ import annotations

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from service.api.schemas import Job, JobAccepted, JobList, JobPath, JobsQuery, error_responses
from service.api.security import BEARER_SECURITY, require_token, server_paths, token_given, without_paths
from service.api.state import service_state
from service.curves import curves_svg
from service.jobs.schemas import JobRecord, TrainRequest

bp = APIBlueprint("jobs", __name__, abp_tags=[Tag(name="training", description="training jobs")])

_PUBLIC = set(Job.model_fields)


def _queue():
    return service_state().jobs


NO_WORKER = (
    "no training worker is alive to run it: start one (backprop worker, or backprop serve without "
    "--no-worker) with the same BACKPROP_REDIS_URL or BACKPROP_STATE_DIR"
)


def _with_notes(records: list[JobRecord]) -> list[dict]:
    """The records as shown, queued ones noting when no training worker is alive to run them."""
    shown = [_public(record) for record in records]
    if any(record["status"] == "queued" for record in shown) and _queue().workers_alive() == 0:
        for record in shown:
            if record["status"] == "queued":
                record["note"] = NO_WORKER
    return shown


def _public(record: JobRecord) -> dict:
    """The record as the API shows it; which machine and process ran it only to token holders."""
    shown = record.model_dump(mode="json", include=_PUBLIC)
    shown["curves"] = f"/jobs/{record.id}/curves.svg"
    if not token_given():
        shown["worker"] = None
        shown["lost_attempts"] = [
            {k: v for k, v in a.items() if k != "worker"} for a in shown["lost_attempts"]
        ]
        shown = without_paths(shown, server_paths())
    return shown


@bp.post(
    "/train",
    responses={202: JobAccepted, **error_responses(401, 409, 415, 422, 429, 503, 507)},
    security=BEARER_SECURITY,
)
@require_token
def submit(body: TrainRequest):
    """Queue a training job; poll the Location for its progress.

    429 (with Retry-After) when BACKPROP_MAX_QUEUED_JOBS jobs wait already; 422 when the job would
    cost more than BACKPROP_MAX_JOB_COST or its dataset is not on the server; 409 for a job on
    corrections when there are none, or a fine-tuning of a model without versions."""
    record = _queue().submit(body, service_state().tracing.carrier())
    location = f"/jobs/{record.id}"
    return {"id": record.id, "status": record.status, "location": location}, 202, {"Location": location}


@bp.get("/jobs", responses={200: JobList, **error_responses(414, 422, 503)})
def list_jobs(query: JobsQuery):
    """Jobs, newest first."""
    records, total = _queue().page(query.limit, query.offset)
    return {
        "jobs": _with_notes(records),
        "total": total,
        "limit": query.limit,
        "offset": query.offset,
    }


@bp.get("/jobs/<job_id>", responses={200: Job, **error_responses(404, 422, 503)})
def get_job(path: JobPath):
    """Status, progress, per-epoch history, result or error, timestamps."""
    return _with_notes([_queue().get(path.job_id)])[0]


@bp.post(
    "/jobs/<job_id>/cancel",
    responses={200: Job, **error_responses(401, 404, 409, 422, 503)},
    security=BEARER_SECURITY,
)
@require_token
def cancel(path: JobPath):
    """A queued job never starts; a running job stops at its next batch and saves no model."""
    return _public(_queue().cancel(path.job_id))


@bp.get(
    "/jobs/<job_id>/curves.svg",
    responses={200: None, **error_responses(404, 422, 503)},
    openapi_extensions={
        "responses": {"200": {"description": "the learning curves", "content": {"image/svg+xml": {}}}}
    },
)
def curves(path: JobPath):
    """The job's loss and accuracy per epoch so far, as an SVG image."""
    record = _queue().get(path.job_id)
    asked = record.request
    title = (
        f"job {record.id[:8]}: {asked.get('model') or asked.get('dataset')} on {asked.get('dataset')}, "
        f"{len(record.history)} of {asked.get('epochs', '?')} epochs, {record.status}"
    )
    return Response(curves_svg(record.history, title=title), mimetype="image/svg+xml")
