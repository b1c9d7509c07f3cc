"""The app served over real HTTP, for the protocol's own clients."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server


@pytest.fixture
def base_url(app):
    """The app served over HTTP on a loopback port, in a thread, for the test's length."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()  # the listening socket too, not only the loop
