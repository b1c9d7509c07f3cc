"""Tracing is off without the standard OTEL variables, and then loads neither the exporter nor the
middleware (the redis client imports parts of the SDK for its own, unused, observability); asked
for without its extra, it says how to get it in one sentence."""

import os
import subprocess
import sys

import pytest

from service import tracing
from service.errors import ExtraMissing


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_only_the_standard_variables_turn_it_on(environ, wanted):
    assert tracing.wanted(environ) is wanted


def test_off_it_imports_nothing_and_spans_are_free(tmp_path):
    code = (
        "import sys; from service import create_app; from service.settings import Settings; "
        f"app = create_app(Settings(state_dir={str(tmp_path)!r})); "
        "app.test_client().post('/predict', json={'pixels': [0] * 784}); "
        "ours = ('opentelemetry.instrumentation.wsgi', 'opentelemetry.exporter'); "
        "print([m for m in ours if m in sys.modules])"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "BACKPROP_"))}
    found = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]"
    with tracing.Tracing().span("anything", a=1) as span:
        assert span is None


def test_asked_for_without_the_extra_it_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if not installed
    with pytest.raises(ExtraMissing, match=r"needs the otel extra: pip install '\.\[otel\]'"):
        tracing.require()
    with pytest.raises(ExtraMissing):
        tracing.start("api")
