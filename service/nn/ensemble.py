"""Several MLPs of one architecture as one wider MLP whose logits are the mean of theirs.

Members side by side: the first layer's weights are concatenated along their outputs, each later
hidden layer's weights sit on a block diagonal (a member's units see only its own), and the
output layer sums the members' contributions scaled by ``1/k``. The result is a plain
``backprop-mlp``: every reader of the store (``/predict``, the protocol, explanations, ONNX
export, fine-tuning) serves an ensemble without knowing it is one; a served network multiplies
block-diagonal layers block by block (``MLP.freeze``), so the zeros cost nothing.
"""

from __future__ import annotations

import numpy as np

from service.nn.blocks import block_diagonal
from service.nn.network import MLP, ModelSpec


def merge_members(members: list[MLP]) -> MLP:
    """One network computing ``mean(member.logits(x))`` for input (N, input_size).

    Members must share input size, classes, input normalization and layer count; their hidden
    sizes may differ. Hidden layer ``i`` of the result has ``sum(member.hidden[i])`` units."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    first = members[0].spec

    def shared(spec: ModelSpec) -> tuple:
        return spec.input_size, spec.num_classes, spec.normalization, spec.class_names, len(spec.hidden)

    if any(shared(member.spec) != shared(first) for member in members[1:]):
        raise ValueError("ensemble members must share input, classes, normalization and depth")
    dtype = members[0].dtype
    depth = len(first.hidden) + 1
    params: dict[str, np.ndarray] = {}
    for i in range(1, depth + 1):
        weights = [member.params[f"W{i}"] for member in members]
        biases = [member.params[f"b{i}"] for member in members]
        if i == 1:
            params["W1"] = np.concatenate(weights, axis=1)
            params["b1"] = np.concatenate(biases)
        elif i < depth:
            params[f"W{i}"] = block_diagonal(weights, dtype)
            params[f"b{i}"] = np.concatenate(biases)
        else:
            params[f"W{i}"] = np.concatenate(weights, axis=0) / dtype.type(len(members))
            params[f"b{i}"] = np.mean(biases, axis=0, dtype=dtype)
    hidden = tuple(sum(member.spec.hidden[layer] for member in members) for layer in range(len(first.hidden)))
    spec = ModelSpec(**{**first.model_dump(), "hidden": hidden})
    return MLP(spec, {key: value.astype(dtype, copy=False) for key, value in params.items()})
