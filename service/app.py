"""The application factory: ``create_app(settings)`` builds everything; nothing lives in globals."""

from __future__ import annotations

import time
from typing import Any

import orjson
from flask import g, request
from flask.json.provider import JSONProvider
from flask_openapi3 import Info, OpenAPI

from service import __version__, tracing, web
from service.api import access, explain, feedback, health, jobs, models, predict, traffic, transfer
from service.api.bounded_body import BoundedBody
from service.api.errors import register_error_handlers, validation_response
from service.api.fast_lane import FastLane
from service.api.metrics import Metrics
from service.api.oip import repository as oip_repository
from service.api.oip import routes as oip
from service.api.openapi import restore_key_patterns
from service.api.state import ServiceState
from service.errors import UnsupportedMediaType
from service.feedback.store import FeedbackStore
from service.jobs.queue import JobQueue
from service.registry import ModelRegistry
from service.settings import Settings
from service.store import ModelStore
from service.traffic.pace import Pace
from service.traffic.policy import StoredPolicy, TrafficPolicy
from service.traffic.router import TrafficRouter
from service.traffic.shadow import ShadowQueue
from service.traffic.verdict import Verdicts
from service.wire import json_bytes, under_protocol


class OrjsonProvider(JSONProvider):
    """Flask's JSON through orjson, which also writes NumPy arrays directly."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return json_bytes(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any):
        obj = self._prepare_response_obj(args, kwargs)
        body = json_bytes(obj)
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
        restore_key_patterns(self.spec_json, [TrafficPolicy, StoredPolicy])


def build_state(settings: Settings) -> ServiceState:
    """The store, models, metrics, queue and traffic policies one serving process works with (the
    HTTP app's, and the gRPC server's: service.grpc)."""
    store = ModelStore(settings.model_store)
    metrics = Metrics()
    registry = ModelRegistry(store, refresh_seconds=settings.default_refresh_seconds)
    router = TrafficRouter(store, refresh_seconds=settings.default_refresh_seconds)
    verdicts = Verdicts(store, registry, router, metrics)
    return ServiceState(
        settings=settings,
        store=store,
        registry=registry,
        metrics=metrics,
        jobs=JobQueue(settings),
        router=router,
        verdicts=verdicts,
        shadows=ShadowQueue(verdicts, pace=Pace(settings.state_dir / "shadow-pace")),
        feedback=FeedbackStore.from_settings(settings),
    )


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
    state = build_state(settings)
    state.tracing = tracing.start("api")
    metrics = state.metrics
    state.init_app(app)
    api = (predict.bp, explain.bp, models.bp, transfer.bp, traffic.bp, jobs.bp, health.bp, oip.bp)
    api += (oip_repository.bp, feedback.bp)
    for blueprint in api:
        app.register_api(blueprint)
    app.register_blueprint(web.bp)  # the pages for people: not part of the API's document
    web.serve_api_docs(app)
    # The document at the root too, where clients look for it first.
    app.add_url_rule("/openapi.json", "openapi_json", lambda: app.api_doc)
    register_error_handlers(app)
    _install_request_hooks(app, metrics)
    app.wsgi_app = BoundedBody(FastLane(app, state), settings.max_body_bytes)
    if state.tracing.enabled:  # outermost: the span covers the fast lane and the body bound too
        app.wsgi_app = state.tracing.wrap(app.wsgi_app)
    return app


def _install_request_hooks(app: OpenAPI, metrics: Metrics) -> None:
    @app.before_request
    def _start() -> None:
        environ = request.environ
        g.request_id, g.started = access.request_id(environ), time.perf_counter()
        encoding = access.content_encoding(environ)
        if encoding is not None:
            # Decompressing would need its own size bound (a small gzip bomb expands without limit);
            # the bodies of this API compress poorly anyway (raw pixels) or are small.
            raise UnsupportedMediaType(
                f"Content-Encoding {encoding!r} is not supported: send the body uncompressed"
            )

    @app.after_request
    def _finish(response):
        context = g._get_current_object()
        request_id = getattr(context, "request_id", "")
        started = getattr(context, "started", time.perf_counter())
        rule, status = request.url_rule, response.status_code
        response.headers["X-Request-ID"] = request_id
        route = rule.rule if rule else "unmatched"
        method, path = request.method, request.path
        access.record(metrics, request_id, method, route, path, status, started, request.environ)
        return response


__all__ = ["build_state", "create_app"]
