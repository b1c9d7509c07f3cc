"""Two pages for people, served by the same app: ``/`` (draw a digit, see the prediction) and
``/dashboard`` (jobs, curves, models). Plain HTML, CSS and JavaScript from this package's
``static`` folder: no build step, nothing fetched from other sites (the Content-Security-Policy
says so to the browser too). The pages use the public HTTP API, like any client."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, render_template

from service.names import NAME_PATTERN, NAME_RULE
from service.training import TrainingConfig

bp = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

# Only this origin, for scripts, styles, images and API calls; no inline scripts or styles.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


# Swagger UI sets styles from its scripts; everything still comes from this origin.
DOCS_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY + "; style-src 'self' 'unsafe-inline'"
# The dashboard's training form: its defaults and bounds are the API's, read from its schema.
FORM_FIELDS = ("hidden", "epochs", "batch_size", "optimizer", "learning_rate", "validation_split", "seed")


def training_form() -> dict[str, dict[str, Any]]:
    """Per form field: ``value`` (the default, shown as typed), and ``min``/``max``/``choices``."""
    properties = TrainingConfig.model_json_schema()["properties"]
    form = {}
    for name in FORM_FIELDS:
        schema = properties[name]
        value = schema["default"]
        form[name] = {
            "value": " ".join(map(str, value)) if isinstance(value, list) else value,
            "min": schema.get("minimum", schema.get("exclusiveMinimum")),
            "max": schema.get("maximum", schema.get("exclusiveMaximum")),
            "choices": schema.get("enum", []),
        }
    return form


def html_pattern(pattern: str) -> str:
    """A Python pattern as an ``<input pattern>`` (anchored by the browser, and compiled with the
    ``v`` flag, in which a literal '-' in a class is escaped)."""
    return pattern.removeprefix("^").removesuffix("$").replace("_-]", "_\\-]")


def _page(template: str, policy: str = CONTENT_SECURITY_POLICY, **context: Any) -> Response:
    response = Response(render_template(template, **context), mimetype="text/html")
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/")
def draw():
    return _page("draw.html")


@bp.get("/dashboard")
def dashboard():
    return _page(
        "dashboard.html", form=training_form(), name_pattern=html_pattern(NAME_PATTERN), name_rule=NAME_RULE
    )


def api_docs():
    return _page("docs.html", DOCS_CONTENT_SECURITY_POLICY)


def serve_api_docs(app: Flask) -> None:
    """``/docs/`` is Swagger UI itself (not flask-openapi3's chooser of one), with this package's
    page: no inline script, and a Content-Security-Policy like the other pages'."""
    app.view_functions["openapi.openapi"] = api_docs
    app.view_functions["swagger.swagger"] = api_docs
