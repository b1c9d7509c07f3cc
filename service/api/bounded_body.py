"""WSGI middleware that reads chunked bodies whole, within the limit, before the app runs."""

from __future__ import annotations

import io

from service.wire import body_too_large, wsgi_error


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
                return wsgi_error(environ, start_response, 400, "Bad Request", message)
            if len(body) > self.max_bytes:
                too_large = body_too_large(self.max_bytes)
                return wsgi_error(environ, start_response, 413, "Request Entity Too Large", too_large)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)  # de-chunked: else Werkzeug ignores the length
        return self.app(environ, start_response)
