"""The application factory: ``create_app(settings)`` builds everything; nothing lives in globals."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import orjson
from flask import g, request
from flask.json.provider import JSONProvider
from flask_openapi3 import Info, OpenAPI

from service import __version__, web
from service.api import explain, health, jobs, models, predict
from service.api.bounded_body import BoundedBody
from service.api.errors import register_error_handlers, validation_response
from service.api.metrics import Metrics
from service.api.oip import routes as oip
from service.api.state import ServiceState
from service.errors import UnsupportedMediaType
from service.jobs.queue import JobQueue
from service.registry import ModelRegistry
from service.settings import Settings
from service.store import ModelStore
from service.wire import under_protocol

log = logging.getLogger("service.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class OrjsonProvider(JSONProvider):
    """Flask's JSON through orjson, which also writes NumPy arrays directly."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, option=_ORJSON_OPTIONS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any):
        obj = self._prepare_response_obj(args, kwargs)
        body = orjson.dumps(obj, option=_ORJSON_OPTIONS)
        return self._app.response_class(body, mimetype="application/json")


class ServiceOpenAPI(OpenAPI):
    def generate_spec_json(self) -> None:
        super().generate_spec_json()
        # flask-openapi3 documents a 422 for every operation; the Open Inference Protocol's answer
        # validation errors with 400 (see service.wire), which they document themselves.
        for path, operations in self.spec_json["paths"].items():
            if under_protocol(path):
                for operation in operations.values():
                    operation["responses"].pop(self.validation_error_status, None)


def create_app(settings: Settings | None = None) -> OpenAPI:
    settings = settings or Settings()
    app = ServiceOpenAPI(
        __name__,
        info=Info(
            title="backprop-service",
            version=__version__,
            description="Train and serve a NumPy backpropagation digit classifier.",
        ),
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
        doc_prefix="/docs",
        doc_url="/openapi.json",
        validation_error_status=422,
        validation_error_callback=validation_response,
    )
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.wsgi_app = BoundedBody(app.wsgi_app, settings.max_body_bytes)
    store = ModelStore(settings.model_store)
    metrics = Metrics()
    ServiceState(
        settings=settings,
        store=store,
        registry=ModelRegistry(store, refresh_seconds=settings.default_refresh_seconds),
        metrics=metrics,
        jobs=JobQueue(settings),
    ).init_app(app)
    for blueprint in (predict.bp, explain.bp, models.bp, jobs.bp, health.bp, oip.bp):
        app.register_api(blueprint)
    app.register_blueprint(web.bp)  # the pages for people: not part of the API's document
    web.serve_api_docs(app)
    # The document at the root too, where clients look for it first.
    app.add_url_rule("/openapi.json", "openapi_json", lambda: app.api_doc)
    register_error_handlers(app)
    _install_request_hooks(app, metrics)
    return app


def _install_request_hooks(app: OpenAPI, metrics: Metrics) -> None:
    """Every request gets an id (the client's X-Request-ID when it is sane), is counted and timed
    by route, and leaves one access log line. These run on every request, so they read the WSGI
    environment directly rather than through Flask's parsed views of it."""

    @app.before_request
    def _start() -> None:
        environ = request.environ
        given = environ.get("HTTP_X_REQUEST_ID", "")
        g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        g.started = time.perf_counter()
        encoding = environ.get("HTTP_CONTENT_ENCODING", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # Decompressing would need its own size bound (a small gzip bomb expands without limit);
            # the bodies of this API compress poorly anyway (raw pixels) or are small.
            raise UnsupportedMediaType(
                f"Content-Encoding {encoding!r} is not supported: send the body uncompressed"
            )

    @app.after_request
    def _finish(response):
        context = g._get_current_object()
        request_id = getattr(context, "request_id", "")
        elapsed = time.perf_counter() - getattr(context, "started", time.perf_counter())
        rule, method, status = request.url_rule, request.method, response.status_code
        metrics.observe(rule.rule if rule else "unmatched", method, status, elapsed)
        response.headers["X-Request-ID"] = request_id
        log.info('%s "%s %s" %s %.1fms', request_id, method, request.path, status, elapsed * 1000)
        return response


__all__ = ["create_app"]
