"""Predictions answered without Flask's per-request machinery: the API's hot path.

A single prediction's own work (parsing, validation, the forward pass) takes tens of microseconds,
and Flask's request context, routing, hooks and response object take as long again. So the
requests that carry the traffic, ``POST /predict`` with a JSON or raw-bytes body and the Open
Inference Protocol's infer, are answered here, in WSGI, when they need nothing the views would do
besides: no query string, no content encoding, a known length within the limit. The lane calls the
functions the views call and leaves the same request id, metrics and access log line.

Everything else goes to the Flask app, and so does any request that fails on the way, with its body
as read: the app answers it, and every error, as it always does. So the lane only ever gives the
answer the app would have given (``tests/api/test_fast_lane.py`` compares them).
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable

from pydantic import ValidationError
from werkzeug.wsgi import ClosingIterator

from service.api import access, predict
from service.api.inputs import from_bytes
from service.api.oip import routes as oip
from service.api.routing import After
from service.api.schemas import ModelPath, VersionPath
from service.api.state import ServiceState
from service.traffic.router import Header
from service.wire import json_bytes

_MIMETYPES = ("application/json", "application/octet-stream")
_INFER = re.compile(r"/v2/models/([^/]+)(?:/versions/([1-9][0-9]{0,17}))?/infer")

# (answer, content type, further headers, what to run once it is sent) from a body; raises for
# anything it does not answer.
Handler = Callable[[bytes], tuple[bytes, str, list[tuple[str, str]], After]]


class FastLane:
    def __init__(self, app, state: ServiceState) -> None:
        self.app, self.state = app.wsgi_app, state
        # The metrics' route labels, as the app's own rules spell them.
        rules = {rule.endpoint: rule.rule for rule in app.url_map.iter_rules()}
        self.routes = {
            "predict": rules["predict.predict"],
            "infer": rules["v2.model_infer"],
            "version_infer": rules["v2.version_infer"],
        }

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        taken = self._route(environ)
        text = environ.get("CONTENT_LENGTH") or ""
        # isdigit() alone takes "²", which int() refuses.
        length = int(text) if text.isascii() and text.isdigit() else None
        if taken is None or length is None or length > self.state.settings.max_body_bytes:
            return self.app(environ, start_response)
        route, handler = taken
        request_id = access.request_id(environ)
        body = environ["wsgi.input"].read(length)
        try:
            if len(body) != length:
                raise EOFError("the body is shorter than its Content-Length")
            answer, mimetype, headers, after = handler(body)
        except Exception:  # noqa: BLE001 - the app answers it, as it would have anyway
            environ["wsgi.input"] = io.BytesIO(body)
            return self.app(environ, start_response)
        start_response(
            "200 OK",
            [
                ("Content-Type", mimetype),
                ("Content-Length", str(len(answer))),
                *headers,
                ("X-Request-ID", request_id),
            ],
        )
        path = environ["PATH_INFO"]
        access.record(self.state.metrics, request_id, "POST", route, path, 200, started, environ)
        # The server closes the body once it is sent: a shadow runs then, never before.
        return [answer] if after is None else ClosingIterator([answer], after)

    def _route(self, environ) -> tuple[str, Handler] | None:
        """The route's label and what answers it, if the lane takes this request."""
        if (
            environ["REQUEST_METHOD"] != "POST"
            or environ.get("QUERY_STRING")
            or access.content_encoding(environ) is not None
        ):
            return None
        mimetype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
        if mimetype not in _MIMETYPES:
            return None
        path = environ["PATH_INFO"]
        if path == "/predict":
            handler = self._predict_json if mimetype == "application/json" else self._predict_bytes
            return self.routes["predict"], lambda body: handler(body, _headers(environ))
        found = _INFER.fullmatch(path)
        if found is None:
            return None
        name, version = found.groups()
        try:
            if version is None:
                target = ModelPath(name=name).name, None
            else:
                checked = VersionPath(name=name, version=int(version))
                target = checked.name, checked.version
        except ValidationError:
            return None
        header_length = environ.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH")
        route = self.routes["infer" if version is None else "version_infer"]
        return route, lambda body: oip.infer(self.state, *target, body, header_length, _headers(environ))

    def _predict_json(self, body: bytes, header: Header):
        with self.state.tracing.decoding(len(body)):
            request = predict.parse_json(body, max_batch=self.state.settings.max_batch)
        unit = request.scale == "unit"
        document, after = predict.answer(
            self.state, request.matrix, request.model, request.version, unit=unit, header=header
        )
        return json_bytes(document), "application/json", [], after

    def _predict_bytes(self, body: bytes, header: Header):
        with self.state.tracing.decoding(len(body)):
            pixels = from_bytes(body, max_batch=self.state.settings.max_batch)
        document, after = predict.answer(self.state, pixels, None, None, unit=False, header=header)
        return json_bytes(document), "application/json", [], after


def _headers(environ) -> Header:
    """A request header by name, from the WSGI environment."""
    return lambda name: environ.get("HTTP_" + name.upper().replace("-", "_"))
