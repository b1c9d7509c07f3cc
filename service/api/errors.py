"""Flask's side of the one error shape (``service.wire``): every error a view raises answers in it.

Domain errors map through their ``code``/``status``; Flask's own HTTP errors (404, 405, 413,
415, ...) and Pydantic validation errors are converted here; anything unexpected becomes a 500
whose body names the request id, never a traceback or a file path.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, g, has_request_context, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from service.api.security import check_token, needs_token
from service.errors import BackpropError, code_of, error_detail
from service.names import NAME_PATTERN, NAME_RULE
from service.wire import body_too_large, error_body

log = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> Response:
    path = request.path if has_request_context() else ""
    status, body = error_body(path, status, code, message, details)
    response = jsonify(body)
    response.status_code = status
    return response


# Patterns said in words: a person reads the rule, not the regular expression.
PATTERN_WORDS = {NAME_PATTERN: f"a model name is {NAME_RULE}"}


def _message(error: dict) -> str:
    if error["type"] == "string_pattern_mismatch":
        return PATTERN_WORDS.get(error.get("ctx", {}).get("pattern"), error["msg"])
    return error["msg"]


def validation_response(exc: ValidationError) -> Response:
    # flask-openapi3 validates a request before the view's own decorators run: a caller without
    # the token hears 401 first, and nothing about the body.
    if needs_token(current_app.view_functions.get(request.endpoint)):
        try:
            check_token()
        except BackpropError as refused:
            return domain_response(refused)
    errors = exc.errors()
    if (
        len(errors) == 1
        and not errors[0]["loc"]
        and errors[0]["type"] == "model_type"
        and not request.is_json
    ):
        # The body was not read as JSON at all: say so, not that it is no dictionary.
        return error_response(
            415,
            "unsupported_media_type",
            "send the body as a JSON object with Content-Type: application/json "
            f"(it came as {request.mimetype or 'no Content-Type'})",
        )
    details = [error_detail(err["loc"], _message(err), err["type"]) for err in errors]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return error_response(422, "validation_error", f"{where}: {first['msg']}", details)


def domain_response(exc: BackpropError) -> Response:
    response = error_response(exc.status, exc.code, exc.message, exc.details)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="backprop"'
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(BackpropError, domain_response)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        return validation_response(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        message = exc.description or exc.name
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        if isinstance(exc, RequestEntityTooLarge) and (request.content_length or 0) > limit:
            message = body_too_large(limit)  # Werkzeug's own words do not name the limit
        response = error_response(exc.code or 500, code_of(exc.name or ""), message)
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error in request %s", g.get("request_id"))
        return error_response(
            500, "internal_error", f"internal server error (request id {g.get('request_id')})"
        )
