"""Cost classes: cheap requests never wait behind expensive ones.

Cheap: predictions from pixels, the protocol's infer, health, models, jobs, pages. Each costs
milliseconds. Expensive: explanations (up to 16 images x 512 forward and backward passes, about a
second), pictures (decoding up to BACKPROP_MAX_IMAGE_PIXELS, up to a second and 100 MB or more) and
model files in and out (an upload verifies up to BACKPROP_MAX_MODEL_MB; a download hashes a file; an
ONNX export builds a graph of the weights; see ``service.api.transfer``).

Behind nginx (``service.front``) the expensive routes go to a gunicorn pool of their own,
BACKPROP_EXPENSIVE_WORKERS processes at a lower CPU priority; nginx lets at most
BACKPROP_EXPENSIVE_WAITING more wait for them and refuses the rest at once with 503 and
Retry-After. The cheap pool never sees an expensive request.

Inside every process, too, at most one expensive request runs at a time and another is refused at
once: with gunicorn facing clients itself (BACKPROP_FRONT=none) that keeps each worker's other
threads for cheap requests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import wraps

from service.errors import Busy


class ExpensiveSlot:
    """The one expensive request a process runs at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @contextmanager
    def held(self, what: str) -> Iterator[None]:
        """Run the body holding the slot, or raise ``Busy`` at once when another request holds it."""
        if not self._lock.acquire(blocking=False):
            raise Busy(f"{what} is expensive and this worker is busy with another: try again in a second")
        try:
            yield
        finally:
            self._lock.release()


def expensive(what: str):
    """Decorate a view whose every request is expensive."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            from service.api.state import service_state

            with service_state().expensive.held(what):
                return view(*args, **kwargs)

        return wrapper

    return decorate
