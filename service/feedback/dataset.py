"""Corrections as a dataset like the others: IDX files under BACKPROP_DATA_DIR/feedback, and a
catalogue dataset with them added (``mnist+feedback``) for training.

``export`` writes every correction into a new folder ``.feedback/export-<time>-<pid>`` (the training
files, and as test files the held-out part: every fifth correction by id, so an example stays on
its side as others arrive), then points the ``feedback`` link at it in one rename. A reader that
resolves the link once reads one consistent export; the last few are kept for readers still on
them.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from service.data import Dataset, load_dataset, read_idx_pair
from service.data.catalogue import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS
from service.data.idx import write_idx
from service.errors import DatasetNotFound, StorageFull, is_out_of_storage
from service.feedback.store import FeedbackStore

log = logging.getLogger(__name__)

HELD_OUT_EVERY = 5  # corrections whose id is a multiple of this are held out for evaluation
KEPT_EXPORTS = 3
SIDE = 28


def base_dataset(name: str) -> str:
    """The catalogue dataset of a dataset name: ``mnist`` of ``mnist+feedback``."""
    return name.partition("+")[0]


def held_out(ids: np.ndarray) -> np.ndarray:
    """Which examples (ids (N,)) are held out: a mask (N,)."""
    return ids % HELD_OUT_EVERY == 0


def export(store: FeedbackStore, data_dir: Path) -> Path:
    """Write the corrections as IDX files and make ``data_dir/feedback`` point at them: the folder."""
    ids, images, labels = store.labelled()
    if not len(ids):
        raise DatasetNotFound("there are no corrections to train on yet (POST /feedback adds them)")
    folder = data_dir / ".feedback" / f"export-{time.time_ns()}-{os.getpid()}"
    test = held_out(ids)
    try:
        folder.mkdir(parents=True)
        for (images_name, labels_name), mask in (
            ((TRAIN_IMAGES, TRAIN_LABELS), ~test),
            ((TEST_IMAGES, TEST_LABELS), test),
        ):
            write_idx(folder / images_name, images[mask].reshape(-1, SIDE, SIDE))
            write_idx(folder / labels_name, labels[mask])
        link = data_dir / "feedback"
        staged = data_dir / ".feedback" / f"link-{os.getpid()}"
        staged.unlink(missing_ok=True)
        staged.symlink_to(folder.relative_to(data_dir))
        os.replace(staged, link)
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if is_out_of_storage(exc):
            raise StorageFull(
                f"the corrections cannot be exported ({exc}): free space in {data_dir}"
            ) from exc
        raise
    log.info("exported %d corrections (%d held out) to %s", len(ids), int(test.sum()), folder)
    _forget_old_exports(folder.parent)
    return folder


def _forget_old_exports(parent: Path) -> None:
    exports = sorted(parent.glob("export-*"), key=lambda p: int(p.name.split("-")[1]))
    for old in exports[:-KEPT_EXPORTS]:
        shutil.rmtree(old, ignore_errors=True)


def load_training_data(
    name: str,
    data_dir: Path,
    store: FeedbackStore,
    *,
    download: bool = False,
    mirrors: tuple[str, ...] | None = None,
) -> Dataset:
    """Dataset ``name`` (``mnist``), or with ``+feedback`` the same with the corrections exported
    now: the training ones added to its training images (marked, to be oversampled), the held-out
    ones beside its test split."""
    _, plus, extra = name.partition("+")
    base = load_dataset(base_dataset(name), data_dir, download=download, mirrors=mirrors)
    if not plus:
        return base
    if extra != "feedback":
        raise DatasetNotFound(f"unknown dataset {name!r}: only corrections can be added (NAME+feedback)")
    folder = export(store, data_dir)
    train_x, train_y = read_idx_pair(folder / TRAIN_IMAGES, folder / TRAIN_LABELS)
    test_x, test_y = read_idx_pair(folder / TEST_IMAGES, folder / TEST_LABELS)
    return Dataset(
        info=base.info,
        source=base.source,
        train_x=np.concatenate([base.train_x, train_x]),
        train_y=np.concatenate([base.train_y, train_y.astype(np.int64)]),
        test_x=base.test_x,
        test_y=base.test_y,
        notes=[*base.notes, f"with {len(train_y)} corrections to train on and {len(test_y)} held out"],
        corrections=np.arange(len(base.train_y) + len(train_y)) >= len(base.train_y),
        held_out_corrections=(test_x, test_y.astype(np.int64)),
    )
