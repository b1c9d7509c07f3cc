"""One JSON error shape for every error: ``{"error": {"code", "message", "details"}}``; under ``/v2``
the Open Inference Protocol's own, ``{"error": "message"}``, with 400 where this API says 422.

Domain errors map through their ``code``/``status``; Flask's own HTTP errors (404, 405, 413,
415, ...) and Pydantic validation errors are converted here; anything unexpected becomes a 500
whose body names the request id, never a traceback or a file path.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import orjson
from flask import Flask, Response, g, has_request_context, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from service.errors import BackpropError, code_of, error_document
from service.names import NAME_PATTERN, NAME_RULE

log = logging.getLogger(__name__)


PROTOCOL_PREFIX = "/v2"


def under_protocol(path: str) -> bool:
    """``path`` is one of the Open Inference Protocol's (``/v2`` and below)."""
    return path == PROTOCOL_PREFIX or path.startswith(PROTOCOL_PREFIX + "/")


def error_body(
    path: str, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> tuple[int, dict[str, Any]]:
    """(status, body) of an error answered at ``path``."""
    if under_protocol(path):
        return (400 if status == 422 else status), {"error": message}
    return status, error_document(code, message, details)


def error_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> Response:
    path = request.path if has_request_context() else ""
    status, body = error_body(path, status, code, message, details)
    response = jsonify(body)
    response.status_code = status
    return response


class BoundedBody:
    """WSGI middleware for bodies of unknown length (``Transfer-Encoding: chunked``).

    Werkzeug can only cut such a body at the limit, after which the truncated body would be
    processed. This reads it, up to one byte past the limit, before the app runs: larger answers
    413 like a body with a Content-Length, and a malformed chunk (the server's parser raises while
    reading) answers 400, both in the API's error shape. The app then sees an ordinary body.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def __call__(self, environ, start_response):
        if environ.get("CONTENT_LENGTH") in (None, "") and environ.pop("wsgi.input_terminated", False):
            try:
                body = environ["wsgi.input"].read(self.max_bytes + 1)
            except Exception as exc:  # noqa: BLE001 - gunicorn's parse errors share no base with others
                message = f"malformed chunked body: {exc}"
                return _plain_error(environ, start_response, 400, "Bad Request", message)
            if len(body) > self.max_bytes:
                message = f"the body is larger than {self.max_bytes:,} bytes (BACKPROP_MAX_BODY_MB)"
                return _plain_error(environ, start_response, 413, "Request Entity Too Large", message)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)  # de-chunked: else Werkzeug ignores the length
        return self.app(environ, start_response)


def _plain_error(environ, start_response, status: int, reason: str, message: str) -> list[bytes]:
    status, document = error_body(environ.get("PATH_INFO", ""), status, code_of(reason), message)
    body = orjson.dumps(document)
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")],
    )
    return [body]


def write_gunicorn_error(sock, status: int, reason: str, message: str) -> None:
    """What gunicorn writes for a request it refuses before the app sees it (a bad request line,
    headers too large), in the one error shape instead of its HTML page."""
    from gunicorn import util

    body = orjson.dumps(error_document(code_of(reason), message or reason))
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin1") + body)


# Patterns said in words: a person reads the rule, not the regular expression.
PATTERN_WORDS = {NAME_PATTERN: f"a model name is {NAME_RULE}"}


def _message(error: dict) -> str:
    if error["type"] == "string_pattern_mismatch":
        return PATTERN_WORDS.get(error.get("ctx", {}).get("pattern"), error["msg"])
    return error["msg"]


def validation_response(exc: ValidationError) -> Response:
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
    details = [{"loc": list(err["loc"]), "msg": _message(err), "type": err["type"]} for err in errors]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return error_response(422, "validation_error", f"{where}: {first['msg']}", details)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(BackpropError)
    def _domain(exc: BackpropError):
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="backprop"'
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        return validation_response(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        response = error_response(exc.code or 500, code_of(exc.name or ""), exc.description or exc.name)
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error in request %s", g.get("request_id"))
        return error_response(
            500, "internal_error", f"internal server error (request id {g.get('request_id')})"
        )
