"""SQLite as the job records and the feedback store use it: connections in autocommit mode with
WAL (readers never wait for the writer), and explicit ``BEGIN IMMEDIATE`` transactions whose
SQLite errors become the caller's own."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def connect(
    path: str | Path, timeout: float, setup: Callable[[sqlite3.Connection], object] | None = None
) -> sqlite3.Connection:
    """A connection to ``path`` that waits up to ``timeout`` seconds for another writer, in WAL
    mode, with ``setup`` (its tables) run on it. Processes that open a new file at the same moment
    race to switch it to WAL, and SQLite answers the losers "database is locked" at once, without
    the wait: so the switch and the setup are tried again until ``timeout``."""
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            if setup is not None:
                setup(db)
            return db
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                db.close()
                raise
            time.sleep(0.01)


def transaction(
    db: sqlite3.Connection,
    work: Callable[[sqlite3.Connection], Any],
    error: Callable[[sqlite3.Error], Exception],
    caught: type[sqlite3.Error] = sqlite3.Error,
) -> Any:
    """``work(db)`` in one write transaction: committed, or rolled back with a ``caught`` SQLite
    error raised as ``error(it)``."""
    try:
        db.execute("BEGIN IMMEDIATE")
        result = work(db)
        db.execute("COMMIT")
    except BaseException as exc:
        if db.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
            db.execute("ROLLBACK")
        if isinstance(exc, caught):
            raise error(exc) from exc
        raise
    return result
