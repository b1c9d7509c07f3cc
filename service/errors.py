"""Domain errors, shared by the engine, the data layer, the store, the job queue and the HTTP layer.

Each error carries a stable machine-readable ``code`` and the HTTP status the web layer maps it
to, so the mapping lives in one place and the engine never imports Flask.
"""

from __future__ import annotations

import errno
from typing import Any


def error_document(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The one error shape of this API."""
    return {"error": {"code": code, "message": message, "details": details or []}}


def code_of(reason: str) -> str:
    """The error code of an HTTP reason phrase: "Request Entity Too Large" -> request_entity_too_large."""
    return reason.lower().replace(" ", "_").replace("'", "") or "http_error"


class BackpropError(Exception):
    """Base class: a problem the user can act on, with a readable message."""

    code = "error"
    status = 400
    retry_after: int | None = None  # seconds, sent as Retry-After: the request may succeed then

    def __init__(
        self, message: str, *, details: list[dict[str, Any]] | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        if retry_after is not None:
            self.retry_after = retry_after


class DatasetError(BackpropError):
    """A dataset file is malformed, inconsistent or of the wrong kind."""

    code = "dataset_invalid"
    status = 422


class DatasetNotFound(DatasetError):
    """No files for a dataset were found where we looked, and downloading was off or failed."""

    code = "dataset_not_found"
    status = 404


class DownloadError(DatasetError):
    """A download failed on every mirror, or a file's checksum did not match."""

    code = "download_failed"
    status = 502


class ModelFileError(BackpropError):
    """A model file is missing arrays, has the wrong shapes, or fails its checksum."""

    code = "model_invalid"
    status = 422


class ModelUnavailable(ModelFileError):
    """A stored version is damaged (corrupt, not JSON, a link out of the store, ...): it cannot serve
    until an operator repairs or deletes it; the other versions are unaffected."""

    code = "model_unavailable"
    status = 503


class ModelUnloaded(BackpropError):
    """The model was unloaded through the protocol's repository extension: its files stay, and it
    answers nothing until it is loaded again."""

    code = "model_unloaded"
    status = 503


class ModelTooLarge(BackpropError):
    """An uploaded model file is larger than BACKPROP_MAX_MODEL_MB."""

    code = "model_too_large"
    status = 413


class ExtraMissing(BackpropError):
    """A feature needs an optional package (an extra) that is not installed here."""

    code = "not_implemented"
    status = 501


class ModelNotFound(BackpropError):
    """The requested model or version is not in the store."""

    code = "model_not_found"
    status = 404


class JobNotFound(BackpropError):
    code = "job_not_found"
    status = 404


class QueueUnavailable(BackpropError):
    """The job queue or the job records cannot be reached."""

    code = "queue_unavailable"
    status = 503


class InvalidModelName(BackpropError):
    """A model name that could escape the store or is otherwise unusable."""

    code = "invalid_model_name"
    status = 422


class TrainingCancelled(BackpropError):
    """Raised from a training callback to stop cooperatively at a batch boundary."""

    code = "cancelled"
    status = 409


class TrainingInterrupted(TrainingCancelled):
    """The worker is shutting down: training stops at a batch boundary and the job goes back on
    the queue, without using one of its attempts."""

    code = "interrupted"
    status = 503


class TrainingDiverged(BackpropError):
    """The loss became NaN or infinite: the weights are useless and are never saved."""

    code = "training_diverged"
    status = 422

    def __init__(self, epoch: int, step: int, what: str) -> None:
        super().__init__(
            f"training diverged at epoch {epoch}, step {step}: {what}; nothing was saved. "
            "Lower the learning rate, or use the cosine schedule or adam"
        )
        self.epoch, self.step = epoch, step


class StorageFull(BackpropError):
    """A disk the service writes to is full (or read-only): nothing partial was left behind."""

    code = "insufficient_storage"
    status = 507


_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
_STORAGE_WORDS = ("full", "disk I/O", "readonly")  # SQLite's words for the same, which carry no errno


def is_out_of_storage(exc: BaseException) -> bool:
    """A full disk, a quota or a read-only mount: the operator must act, the request was fine."""
    return getattr(exc, "errno", None) in _STORAGE_ERRNOS or any(w in str(exc) for w in _STORAGE_WORDS)


class TooManyJobs(BackpropError):
    """The queue already holds as many jobs as the operator allows."""

    code = "too_many_jobs"
    status = 429


class Busy(BackpropError):
    """An expensive request (an explanation, a picture) beyond the capacity set aside for them:
    refused at once rather than queued, so that it never holds what cheap requests need."""

    code = "busy"
    status = 503
    retry_after = 1


def error_detail(loc: list[Any], msg: str, kind: str) -> dict[str, Any]:
    """One entry of an error's ``details``: where (field names and indexes), what, which rule."""
    return {"loc": list(loc), "msg": msg, "type": kind}


class InvalidInput(BackpropError):
    """A request that does not fit the API contract; ``details`` name each field and index."""

    code = "validation_error"
    status = 422

    @classmethod
    def at(cls, loc: list[Any], msg: str, kind: str, *, message: str | None = None) -> InvalidInput:
        """The error of one place: ``message`` (default: ``where: msg``, as ``pixels[3]: ...``)."""
        where = str(loc[0]) + "".join(f"[{part}]" for part in loc[1:]) if loc else "body"
        return cls(message or f"{where}: {msg}", details=[error_detail(loc, msg, kind)])


class UnreadableImage(BackpropError):
    """A picture of a digit that cannot be decoded, or is too large to decode."""

    code = "image_unreadable"
    status = 422


class UnsupportedMediaType(BackpropError):
    code = "unsupported_media_type"
    status = 415


class Unauthorized(BackpropError):
    code = "unauthorized"
    status = 401


class Conflict(BackpropError):
    code = "conflict"
    status = 409


class NotReady(BackpropError):
    code = "not_ready"
    status = 503


class UnsafeConfiguration(BackpropError):
    """The service would start unsafely: model-changing endpoints open to anyone, or no front to
    keep slow clients from stalling it."""

    code = "unsafe_configuration"
    status = 500


class CannotServe(BackpropError):
    """``backprop serve`` cannot start here: its port is taken, or another instance owns its state
    folder."""

    code = "cannot_serve"
    status = 500


class FrontUnavailable(UnsafeConfiguration):
    """``backprop serve`` is to put nginx before gunicorn, and there is no nginx."""

    code = "front_unavailable"


class ExampleNotFound(BackpropError):
    """No stored correction or kept input of that id (or request id)."""

    code = "example_not_found"
    status = 404


class RateLimited(BackpropError):
    """One client address sent more than its share in the last minute."""

    code = "rate_limited"
    status = 429


class FeedbackOff(BackpropError):
    """The operator turned corrections off (BACKPROP_FEEDBACK=0)."""

    code = "feedback_off"
    status = 403


class FeedbackUnavailable(BackpropError):
    """The feedback store cannot be opened or is busy beyond its wait."""

    code = "feedback_unavailable"
    status = 503
    retry_after = 1
