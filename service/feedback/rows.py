"""How the feedback store keeps its examples in SQLite: the table, a row as the API shows it, and the
storage errors a person can act on."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import numpy as np

from service.errors import FeedbackUnavailable, StorageFull, is_out_of_storage

PIXELS = 784
COLUMNS = "id, created, label, predicted, model, version, probabilities, request_id, position, corrected"


def with_schema(db: sqlite3.Connection) -> sqlite3.Connection:
    db.execute(
        "CREATE TABLE IF NOT EXISTS examples (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "created REAL NOT NULL, pixels BLOB NOT NULL, label INTEGER, predicted INTEGER, "
        "model TEXT, version INTEGER, probabilities TEXT, request_id TEXT, position INTEGER, "
        "client TEXT, corrected REAL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS by_request ON examples (request_id, position)")
    db.execute("CREATE INDEX IF NOT EXISTS by_client ON examples (client, corrected)")
    return db


def blob(pixels: np.ndarray) -> bytes:
    return np.ascontiguousarray(pixels, dtype=np.uint8).reshape(PIXELS).tobytes()


def rounded(probabilities: np.ndarray) -> str:
    return json.dumps([round(float(p), 6) for p in probabilities])


def example(row: tuple) -> dict[str, Any]:
    names = [name.strip() for name in COLUMNS.split(",")] + (["pixels"] if len(row) > 10 else [])
    example = dict(zip(names, row, strict=True))
    if example["probabilities"] is not None:
        example["probabilities"] = json.loads(example["probabilities"])
    if "pixels" in example:
        example["pixels"] = list(example["pixels"])
    return example


def storage_error(exc: BaseException) -> Exception:
    if is_out_of_storage(exc):
        return StorageFull(f"the feedback store cannot be written ({exc}): free space in BACKPROP_DATA_DIR")
    return FeedbackUnavailable(f"the feedback store is unavailable: {exc}")
