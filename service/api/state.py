"""What the views need, built by ``create_app`` and hung off ``app.extensions``, with one typed
accessor so that views never look it up by name."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from flask import Flask, current_app

from service.api.cost import ExpensiveSlot
from service.api.metrics import Metrics
from service.feedback.store import FeedbackStore
from service.jobs.queue import JobQueue
from service.registry import ModelRegistry
from service.settings import Settings
from service.store import ModelStore
from service.tracing import Tracing
from service.traffic.router import TrafficRouter
from service.traffic.shadow import ShadowQueue
from service.traffic.verdict import Verdicts

EXTENSION = "backprop"


@dataclass
class ServiceState:
    settings: Settings
    store: ModelStore
    registry: ModelRegistry
    metrics: Metrics
    jobs: JobQueue
    router: TrafficRouter
    verdicts: Verdicts
    shadows: ShadowQueue
    feedback: FeedbackStore
    capture_rng: np.random.Generator = field(default_factory=np.random.default_rng)  # which inputs are kept
    expensive: ExpensiveSlot = field(default_factory=ExpensiveSlot)
    tracing: Tracing = field(default_factory=Tracing)  # off unless create_app starts it

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self


def service_state(app: Flask | None = None) -> ServiceState:
    """The state of ``app``, or of the app handling the current request."""
    return (app or current_app).extensions[EXTENSION]
