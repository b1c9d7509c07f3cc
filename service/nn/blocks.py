"""Block-diagonal weight matrices: built from blocks (an ensemble's hidden layers, whose members
see only their own units) and found again in a loaded matrix, so that inference multiplies the
blocks and skips the zeros between them (a dense product of a k-member ensemble's hidden layer
costs k times the sum of its members').
"""

from __future__ import annotations

import numpy as np

MAX_BLOCKS = 16  # more would cost more in Python calls than the zeros they skip
MIN_SAVING = 0.25  # of the dense product's multiply-adds; below it the dense product is as fast


def block_diagonal(blocks: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """(sum of rows, sum of columns) with ``blocks`` on the diagonal and zeros elsewhere."""
    merged = np.zeros((sum(b.shape[0] for b in blocks), sum(b.shape[1] for b in blocks)), dtype=dtype)
    row = col = 0
    for block in blocks:
        merged[row : row + block.shape[0], col : col + block.shape[1]] = block
        row, col = row + block.shape[0], col + block.shape[1]
    return merged


def diagonal_blocks(weights: np.ndarray) -> list[tuple[slice, slice]] | None:
    """(rows, columns) of the diagonal blocks of ``weights`` (fan_in, fan_out) outside which every
    entry is zero, with neither empty, or None when splitting does not pay: fewer than two blocks,
    more than ``MAX_BLOCKS``, or less than ``MIN_SAVING`` of the multiply-adds saved.

    Rows up to ``i`` and rows after it fall in different blocks when the last column any of the
    first uses comes before the first column any of the others uses."""
    fan_in, fan_out = weights.shape
    if fan_in < 2 or fan_out < 2:
        return None
    nonzero = weights != 0
    used = nonzero.any(axis=1)
    first = np.where(used, nonzero.argmax(axis=1), fan_out)
    last = np.where(used, fan_out - 1 - nonzero[:, ::-1].argmax(axis=1), -1)
    reach = np.maximum.accumulate(last)
    start = np.minimum.accumulate(first[::-1])[::-1]
    cuts = np.flatnonzero(reach[:-1] < start[1:]) + 1
    row_edges = [0, *cuts.tolist(), fan_in]
    col_edges = [0, *(reach[cuts - 1] + 1).tolist(), fan_out]
    blocks = [
        (slice(r0, r1), slice(c0, c1))
        for r0, r1, c0, c1 in zip(row_edges[:-1], row_edges[1:], col_edges[:-1], col_edges[1:], strict=True)
        if r1 > r0 and c1 > c0
    ]
    cost = sum((rows.stop - rows.start) * (cols.stop - cols.start) for rows, cols in blocks)
    if not 2 <= len(blocks) <= MAX_BLOCKS or cost > (1 - MIN_SAVING) * fan_in * fan_out:
        return None
    return blocks


def multiply_blocks(x: np.ndarray, blocks: list[tuple[slice, slice, np.ndarray]], fan_out: int) -> np.ndarray:
    """``x @ W`` for x (N, fan_in) and a W (fan_in, fan_out) that is zero outside ``blocks``, given
    as (rows, columns, W[rows, columns]): (N, fan_out)."""
    out = np.zeros((x.shape[0], fan_out), dtype=np.result_type(x, blocks[0][2]))
    for rows, cols, weight in blocks:
        np.matmul(x[:, rows], weight, out=out[:, cols])
    return out
