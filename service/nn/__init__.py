"""The NumPy backpropagation engine: layers, the MLP, optimizers, training and gradient checks."""

from service.nn.network import MLP, ModelSpec, Normalization
from service.nn.optimizers import make_optimizer
from service.nn.trainer import Callback, EpochRecord, Progress, fit

__all__ = [
    "MLP",
    "Callback",
    "EpochRecord",
    "ModelSpec",
    "Normalization",
    "Progress",
    "fit",
    "make_optimizer",
]
