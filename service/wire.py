"""What errors look like on the wire, without Flask: the app's handlers, nginx's own pages
(``service.front``) and gunicorn's refusals all answer in these shapes.

This API's shape is ``{"error": {"code", "message", "details"}}``; under ``/v2``, the Open
Inference Protocol's routes, the protocol's own ``{"error": "message"}``, with 400 where this API
says 422.
"""

from __future__ import annotations

from typing import Any

import orjson

from service.errors import code_of, error_document

PROTOCOL_PREFIX = "/v2"
# Bytes of a request line that gunicorn reads (its most, short of unlimited) and that nginx's
# request-line buffer (service.front's HEADER_BUFFER, 8k) holds: longer is a 414 from either.
REQUEST_LINE_MAX = 8190
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_bytes(document: Any) -> bytes:
    """A JSON answer as the app writes it; NumPy arrays are written directly."""
    return orjson.dumps(document, option=_JSON_OPTIONS)


def under_protocol(path: str) -> bool:
    """``path`` is one of the Open Inference Protocol's (``/v2`` and below)."""
    return path == PROTOCOL_PREFIX or path.startswith(PROTOCOL_PREFIX + "/")


def body_too_large(max_bytes: int) -> str:
    """The 413's message, whichever refuses the body: nginx, the chunked-body reader or the app."""
    return f"the body is over {max_bytes:,} bytes (BACKPROP_MAX_BODY_MB)"


def error_body(
    path: str, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> tuple[int, dict[str, Any]]:
    """(status, body) of an error answered at ``path``."""
    if under_protocol(path):
        return (400 if status == 422 else status), {"error": message}
    return status, error_document(code, message, details)


def wsgi_error(environ, start_response, status: int, reason: str, message: str) -> list[bytes]:
    """Answer a WSGI request with an error, in the shape of its path, and close the connection."""
    status, document = error_body(environ.get("PATH_INFO", ""), status, code_of(reason), message)
    body = orjson.dumps(document)
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")],
    )
    return [body]


def raw_http_error(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 answer for a request refused before any path is known (a bad request
    line, headers too large)."""
    body = orjson.dumps(error_document(code_of(reason), message or reason))
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin1") + body
