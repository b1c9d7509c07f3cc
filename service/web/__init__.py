"""Two pages for people, served by the same app: ``/`` (draw a digit, see the prediction) and
``/dashboard`` (jobs, curves, models). Plain HTML, CSS and JavaScript from this package's
``static`` folder: no build step, nothing fetched from other sites (the Content-Security-Policy
says so to the browser too). The pages use the public HTTP API, like any client."""

from __future__ import annotations

from flask import Blueprint, Response, render_template

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


def _page(template: str) -> Response:
    response = Response(render_template(template), mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/")
def draw():
    return _page("draw.html")


@bp.get("/dashboard")
def dashboard():
    return _page("dashboard.html")
