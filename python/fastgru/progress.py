"""The training progress display of ``fit(verbose=...)``, as Keras prints it.

* ``verbose=1`` on a terminal: a bar redrawn in place (``\\r``) while the epoch runs, with the
  steps done, the time left and the running mean of the batch losses, then the epoch's final
  line (time, time per step, every log)::

      Epoch 1/10
      12/32 [=========>....................] - ETA: 1s - loss: 0.0412
      32/32 [==============================] - 2s 61ms/step - loss: 0.0398 - val_loss: 0.0387

* ``verbose=1`` when the output is not a terminal (a log file, a notebook capture, CI) and
  ``verbose=2``: one plain line per epoch, no redraws.

Redraws are throttled (``interval`` seconds), so the bar costs nothing measurable per batch.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Dict, Optional, TextIO

__all__ = ["ProgressBar", "format_value", "format_logs", "is_terminal"]


def format_value(value: Optional[float]) -> str:
    """Keras' number format in progress lines."""
    if value is None or not math.isfinite(value):
        return str(value)
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.4e}"


def format_logs(logs: Dict[str, float]) -> str:
    return " - ".join(f"{k}: {format_value(v)}" for k, v in logs.items())


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (ValueError, OSError):  # a closed stream
        return False


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return "%d:%02d:%02d" % (seconds // 3600, (seconds % 3600) // 60, seconds % 60)
    if seconds >= 60:
        return "%d:%02d" % (seconds // 60, seconds % 60)
    return "%ds" % seconds


def _per_step(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


class ProgressBar:
    """One epoch's bar: ``update(step, loss)`` after each batch, ``finish(logs)`` at the end.
    ``live=False`` prints only the final plain line (not a terminal, or ``verbose=2``)."""

    def __init__(self, steps: int, live: bool, stream: Optional[TextIO] = None,
                 width: int = 30, interval: float = 0.05):
        self.steps = steps
        self.live = live
        self.stream = stream if stream is not None else sys.stdout
        self.width = width
        self.interval = interval
        self._start = time.perf_counter()
        self._last_draw = -math.inf
        self._drawn_width = 0

    def _bar(self, step: int) -> str:
        digits = len(str(self.steps))
        done = int(self.width * step / self.steps)
        if step < self.steps:
            bar = "=" * max(done - 1, 0) + (">" if done > 0 else "") + "." * (self.width - done)
        else:
            bar = "=" * self.width
        return f"{step:>{digits}}/{self.steps} [{bar}]"

    def _draw(self, text: str, end: str = "") -> None:
        pad = " " * max(self._drawn_width - len(text), 0)
        self.stream.write("\r" + text + pad + end)
        self.stream.flush()
        self._drawn_width = len(text)

    def update(self, step: int, loss: float) -> None:
        """Redraw after ``step`` of ``steps`` batches (at most every ``interval`` seconds)."""
        if not self.live or step >= self.steps:
            return
        now = time.perf_counter()
        if now - self._last_draw < self.interval:
            return
        self._last_draw = now
        eta = (now - self._start) / step * (self.steps - step)
        self._draw(f"{self._bar(step)} - ETA: {_duration(eta)} - loss: {format_value(loss)}")

    def finish(self, logs: Dict[str, float]) -> None:
        """The epoch's final line: steps, time, time per step and every log."""
        elapsed = time.perf_counter() - self._start
        line = format_logs(logs)
        if self.live:
            self._draw(f"{self._bar(self.steps)} - {elapsed:.0f}s {_per_step(elapsed / self.steps)}"
                       f" - {line}", end="\n")
        else:
            self.stream.write(f"{self.steps}/{self.steps} - {line} - {elapsed:.2f}s\n")
            self.stream.flush()
