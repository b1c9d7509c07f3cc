"""One JSON error shape for every error: ``{"error": {"code", "message", "details"}}``.

Domain errors map through their ``code``/``status``; Flask's own HTTP errors (404, 405, 413,
415, ...) and Pydantic validation errors are converted here; anything unexpected becomes a 500
whose body names the request id, never a traceback or a file path.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from service.errors import BackpropError, TooManyJobs

log = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "details": details or []}})
    response.status_code = status
    return response


def validation_response(exc: ValidationError) -> Response:
    details = [
        {"loc": [p for p in err["loc"]], "msg": err["msg"], "type": err["type"]} for err in exc.errors()
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return error_response(422, "validation_error", f"{where}: {first['msg']}", details)


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "http_error").lower().replace(" ", "_").replace("'", "")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(BackpropError)
    def _domain(exc: BackpropError):
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="backprop"'
        if isinstance(exc, TooManyJobs):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        return validation_response(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        response = error_response(exc.code or 500, _http_code(exc), exc.description or exc.name)
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error in request %s", g.get("request_id"))
        return error_response(
            500, "internal_error", f"internal server error (request id {g.get('request_id')})"
        )
