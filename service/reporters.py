"""How ``backprop train`` shows training: a progress bar and a line per epoch on a terminal, or
JSON lines for programs."""

from __future__ import annotations

import json
from typing import Any

from service.nn import Callback, EpochRecord, Progress


def emit(payload: dict[str, Any]) -> None:
    """One JSON line on standard output, flushed (programs read it as it comes)."""
    print(json.dumps(payload), flush=True)


class TerminalReporter(Callback):
    """A progress bar over all steps on a terminal, and a line per epoch."""

    def __init__(self, stream) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.stream = stream
        self.bar = None

    def on_batch_end(self, progress: Progress) -> None:
        if self.bar is None:
            self.bar = self._tqdm(
                total=progress.epochs * progress.steps_per_epoch,
                file=self.stream,
                unit="batch",
                disable=not self.stream.isatty(),
                leave=False,
            )
        self.bar.update(1)
        if progress.step % 20 == 0:
            self.bar.set_description(f"epoch {progress.epoch}/{progress.epochs} loss {progress.loss:.4f}")

    def on_epoch_end(self, record: EpochRecord) -> None:
        val = "-" if record.val_accuracy is None else f"{record.val_accuracy:.4f}"
        line = (
            f"epoch {record.epoch:3d}  loss {record.loss:.4f}  train acc {record.train_accuracy:.4f}"
            f"  val acc {val}  {record.seconds:.1f}s"
        )
        (self.bar.write if self.bar else print)(line, file=self.stream)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class JsonReporter(Callback):
    def on_epoch_end(self, record: EpochRecord) -> None:
        emit({"event": "epoch", **record.to_dict()})
