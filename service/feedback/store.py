"""The store of examples people give back: corrections (a digit and its right label) and kept inputs
(a sampled fraction of what was classified, with what answered it, which a correction can name by
request id instead of sending the pixels again).

One SQLite file under BACKPROP_DATA_DIR (``.feedback/examples.sqlite3``), so that API replicas and
training workers sharing the data folder share it too. It is bounded: at most ``max_examples``
rows. Kept inputs take at most half of them (beyond, a new one takes the place of the oldest), so
that they never crowd out corrections; a correction beyond the bound is refused (507): nothing a
person corrected is ever evicted.
Each client address may add ``per_minute`` corrections a minute (429 beyond), counted in the same
transaction as the insert, so the limit holds across gunicorn workers and replicas.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from service import sqlite
from service.errors import (
    Conflict,
    ExampleNotFound,
    FeedbackUnavailable,
    RateLimited,
    StorageFull,
)
from service.feedback import rows
from service.feedback.rows import PIXELS
from service.settings import Settings

CLASSES = 10
RATE_WINDOW_SECONDS = 60
CAPTURE_TIMEOUT_SECONDS = 0.05  # a kept input is dropped rather than hold up the answer it came with


def store_path(data_dir: Path) -> Path:
    return data_dir / ".feedback" / "examples.sqlite3"


class FeedbackStore:
    def __init__(
        self,
        data_dir: Path,
        *,
        max_examples: int,
        per_minute: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = store_path(data_dir)
        self.max_examples, self.per_minute = max_examples, per_minute
        self._clock = clock
        self._local = threading.local()

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedbackStore:
        return cls(
            settings.data_dir,
            max_examples=settings.feedback_max_examples,
            per_minute=settings.feedback_per_minute,
        )

    def _connect(self, timeout: float = 10.0, *, create: bool = True) -> sqlite3.Connection:
        """The store's connection (this thread's); with ``create`` False and no store yet, an empty
        one in memory: reading leaves no file behind in the data folder."""
        key = f"db_{timeout}"
        db = getattr(self._local, key, None)
        if db is not None:
            return db
        if not create and not self.path.exists():
            return rows.with_schema(sqlite3.connect(":memory:", isolation_level=None))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite.connect(self.path, timeout, rows.with_schema)
        except (OSError, sqlite3.Error) as exc:
            raise rows.storage_error(exc) from exc
        setattr(self._local, key, db)
        return db

    def _transaction(
        self, work: Callable[[sqlite3.Connection], Any], timeout: float = 10.0, *, create: bool = True
    ) -> Any:
        return sqlite.transaction(self._connect(timeout, create=create), work, rows.storage_error)

    def correct(
        self,
        pixels: np.ndarray,
        label: int,
        client: str,
        *,
        predicted: int | None = None,
        model: str | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        """Store ``pixels`` (784,) uint8 with its right ``label``: the new example."""
        now = self._clock()

        def work(db: sqlite3.Connection) -> int:
            self._within_rate(db, client, now)
            self._room_for_correction(db)
            cursor = db.execute(
                "INSERT INTO examples (created, pixels, label, predicted, model, version, client, corrected) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (now, rows.blob(pixels), label, predicted, model, version, client, now),
            )
            return int(cursor.lastrowid)

        return self.get(self._transaction(work))

    def correct_request(self, request_id: str, position: int, label: int, client: str) -> dict[str, Any]:
        """Label the kept input ``position`` of request ``request_id``: the example."""
        now = self._clock()

        def work(db: sqlite3.Connection) -> int:
            row = db.execute(
                "SELECT id, label FROM examples WHERE request_id = ? AND position = ?", (request_id, position)
            ).fetchone()
            if row is None:
                raise ExampleNotFound(
                    f"no kept input {position} of request {request_id!r}: only a sampled fraction of "
                    "requests is kept (BACKPROP_CAPTURE_FRACTION); send the pixels instead"
                )
            if row[1] is not None:
                raise Conflict(
                    f"the input of request {request_id!r} was already corrected (example {row[0]})"
                )
            self._within_rate(db, client, now)
            db.execute(
                "UPDATE examples SET label = ?, client = ?, corrected = ? WHERE id = ?",
                (label, client, now, row[0]),
            )
            return int(row[0])

        return self.get(self._transaction(work, create=False))

    def capture(
        self, pixels: np.ndarray, probabilities: np.ndarray, model: str, version: int, request_id: str
    ) -> bool:
        """Keep images ``pixels`` (N, 784) with their answers ``probabilities`` (N, classes), in
        positions 0..N-1 of ``request_id``; False when they could not be kept (a busy or full disk,
        a store of corrections only): the answer goes out all the same."""
        now = self._clock()
        labels = probabilities.argmax(axis=1)

        def work(db: sqlite3.Connection) -> bool:
            for position, (image, answer, label) in enumerate(
                zip(pixels, probabilities, labels, strict=True)
            ):
                if not self._room_for_kept_input(db):
                    return position > 0
                db.execute(
                    "INSERT INTO examples (created, pixels, predicted, model, version, probabilities, "
                    "request_id, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        now,
                        rows.blob(image),
                        int(label),
                        model,
                        version,
                        rows.rounded(answer),
                        request_id,
                        position,
                    ),
                )
            return True

        try:
            return self._transaction(work, timeout=CAPTURE_TIMEOUT_SECONDS)
        except (StorageFull, FeedbackUnavailable):
            return False

    def _within_rate(self, db: sqlite3.Connection, client: str, now: float) -> None:
        recent = db.execute(
            "SELECT COUNT(*), MIN(corrected) FROM examples WHERE client = ? AND corrected > ?",
            (client, now - RATE_WINDOW_SECONDS),
        ).fetchone()
        if recent[0] >= self.per_minute:
            wait = max(1, math.ceil(recent[1] + RATE_WINDOW_SECONDS - now))
            raise RateLimited(
                f"{recent[0]} corrections from {client} in the last minute: at most {self.per_minute} "
                f"(BACKPROP_FEEDBACK_PER_MINUTE); try again in {wait} s",
                retry_after=wait,
            )

    def _room_for_correction(self, db: sqlite3.Connection) -> None:
        if db.execute("SELECT COUNT(*) FROM examples").fetchone()[0] >= self.max_examples:
            raise StorageFull(
                f"the feedback store is full: it holds {self.max_examples:,} examples "
                "(BACKPROP_FEEDBACK_MAX_EXAMPLES); a token holder can delete some"
            )

    def _room_for_kept_input(self, db: sqlite3.Connection) -> bool:
        kept, total = db.execute("SELECT COUNT(*) - COUNT(label), COUNT(*) FROM examples").fetchone()
        if kept >= self.max_examples // 2:
            db.execute("DELETE FROM examples WHERE id = (SELECT MIN(id) FROM examples WHERE label IS NULL)")
            return True
        return total < self.max_examples

    def get(self, example_id: int, *, pixels: bool = False) -> dict[str, Any]:
        columns = rows.COLUMNS + (", pixels" if pixels else "")
        row = (
            self._connect(create=False)
            .execute(f"SELECT {columns} FROM examples WHERE id = ?", (example_id,))
            .fetchone()
        )
        if row is None:
            raise ExampleNotFound(f"no example {example_id}")
        return rows.example(row)

    def list(
        self, *, limit: int, offset: int, corrected: bool | None = None, pixels: bool = False
    ) -> tuple[list[dict[str, Any]], int]:
        """The newest examples first (``corrected``: only corrections, or only uncorrected kept
        inputs), with their pixels or not, and how many there are."""
        where = "" if corrected is None else f"WHERE label IS {'NOT ' if corrected else ''}NULL"
        columns = rows.COLUMNS + (", pixels" if pixels else "")
        db = self._connect(create=False)
        total = db.execute(f"SELECT COUNT(*) FROM examples {where}").fetchone()[0]
        found = db.execute(
            f"SELECT {columns} FROM examples {where} ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset)
        ).fetchall()
        return [rows.example(row) for row in found], int(total)

    def relabel(self, example_id: int, label: int) -> dict[str, Any]:
        now = self._clock()

        def work(db: sqlite3.Connection) -> None:
            changed = db.execute(
                "UPDATE examples SET label = ?, corrected = COALESCE(corrected, ?) WHERE id = ?",
                (label, now, example_id),
            ).rowcount
            if not changed:
                raise ExampleNotFound(f"no example {example_id}")

        self._transaction(work, create=False)
        return self.get(example_id)

    def delete(self, example_id: int) -> None:
        def work(db: sqlite3.Connection) -> None:
            if not db.execute("DELETE FROM examples WHERE id = ?", (example_id,)).rowcount:
                raise ExampleNotFound(f"no example {example_id}")

        self._transaction(work, create=False)

    def summary(self) -> dict[str, Any]:
        """How many corrections of each digit, and the confusions they reveal: ``confusions[p][c]``
        counts examples answered ``p`` and corrected to ``c``."""
        db = self._connect(create=False)
        per_label = np.zeros(CLASSES, dtype=int)
        confusions = np.zeros((CLASSES, CLASSES), dtype=int)
        for label, predicted, count in db.execute(
            "SELECT label, predicted, COUNT(*) FROM examples WHERE label IS NOT NULL "
            "GROUP BY label, predicted"
        ):
            per_label[label] += count
            if predicted is not None:
                confusions[predicted, label] += count
        kept = db.execute("SELECT COUNT(*) FROM examples WHERE label IS NULL").fetchone()[0]
        return {
            "corrections": int(per_label.sum()),
            "kept_inputs": int(kept),
            "max_examples": self.max_examples,
            "per_label": per_label.tolist(),
            "confusions": confusions.tolist(),
        }

    def labelled(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every correction, oldest first: ids (N,), pixels (N, 784) uint8 and labels (N,)."""
        found = (
            self._connect(create=False)
            .execute("SELECT id, pixels, label FROM examples WHERE label IS NOT NULL ORDER BY id")
            .fetchall()
        )
        ids = np.array([row[0] for row in found], dtype=np.int64)
        images = np.frombuffer(b"".join(row[1] for row in found), dtype=np.uint8).reshape(len(found), PIXELS)
        return ids, images, np.array([row[2] for row in found], dtype=np.int64)
