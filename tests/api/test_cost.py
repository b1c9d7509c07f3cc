"""Cost classes inside one process (service.api.cost): one expensive request at a time, another is
refused at once with 503 and Retry-After; cheap requests never are. The pools behind nginx are
tested in tests/system/test_cost_classes.py."""

import io

import numpy as np
import pytest

from service.api.state import service_state

EXPENSIVE = [
    ("post", "/explain", {"json": {"pixels": [0] * 784}}),
    ("get", "/explain/heatmap.svg?image=" + "A" * 1046, {}),
]


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def busy(client):
    """The process's expensive slot, held as another request would hold it."""
    slot = service_state(client.application).expensive
    with slot.held("a test's request"):
        yield client


@pytest.mark.parametrize(("method", "url", "options"), EXPENSIVE)
def test_an_expensive_request_beyond_the_slot_is_refused_at_once(busy, method, url, options):
    response = getattr(busy, method)(url, **options)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    error = response.get_json()["error"]
    assert error["code"] == "busy" and "try again" in error["message"]


def test_a_picture_is_expensive_and_pixels_are_cheap(busy):
    refused = busy.post("/predict", data=_png(), content_type="image/png")
    assert refused.status_code == 503 and refused.get_json()["error"]["code"] == "busy"
    assert busy.post("/predict", json={"pixels": [0] * 784}).status_code == 200
    assert busy.get("/healthz").status_code == 200


def test_the_slot_is_free_again_after_a_request_and_after_an_error(client):
    assert client.post("/explain", json={"pixels": [0] * 784}).status_code == 200
    assert client.post("/explain", json={"pixels": [999] * 784}).status_code == 422
    assert client.post("/predict", data=b"not a picture", content_type="image/png").status_code == 422
    assert client.post("/explain", json={"pixels": [0] * 784}).status_code == 200
