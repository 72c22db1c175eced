"""Training progress for a person watching: a bar on a terminal or in a notebook, else a line.

On a terminal (stderr is a TTY) or in a Jupyter notebook, a tqdm bar (steps, rate, ETA); log
lines printed while it is shown clear it first, so they are never glued onto it. Elsewhere (a
pipe, `| tee`, nohup, a log file, CI) one log line every `interval_s` seconds:

  progress: step 1200/5400 (22%)  41,000 examples/s  ETA 0:01:02
"""

import datetime
import shutil
import sys
import time

from absl import logging


def _in_notebook():
  return "ipykernel" in sys.modules


def _eta(seconds):
  return str(datetime.timedelta(seconds=int(round(seconds))))


class _ClearBarFirst:
  """A logging filter that clears the bar before a record is printed (it redraws at the next
  update). It never drops a record."""

  def __init__(self, bar):
    self.bar = bar

  def filter(self, record):
    del record
    self.bar.clear()
    return True


class Progress:
  """Shows training progress from `start` to `total` steps (see the module docstring).

  Args:
    total: int, the last step.
    start: int, the step training starts (or resumes) at.
    batch_size: int, examples per step (for examples/s).
    interval_s: float, seconds between progress lines when no bar is shown.
    bar: True/False to force a bar or lines; None decides from stderr and the notebook.
    clock: callable returning seconds (time.monotonic; tests pass their own).
  """

  def __init__(self, total, start, batch_size, interval_s=30.0, bar=None, clock=time.monotonic):
    self.total, self.start, self.batch_size = total, start, batch_size
    self.interval_s, self.clock = interval_s, clock
    self._began = self._last_line = clock()
    self._bar = self._filter = None
    if bar is None:
      bar = sys.stderr.isatty() or _in_notebook()
    if bar and total > start:
      from tqdm import auto  # pylint: disable=import-outside-toplevel
      # A terminal may report 0 columns or rows (then tqdm prints nothing): fall back to 100x24.
      size = shutil.get_terminal_size((100, 24))
      shape = {} if _in_notebook() else dict(ncols=size.columns or 100, nrows=size.lines or 24)
      self._bar = auto.tqdm(total=total, initial=start, unit="step", file=sys.stderr,
                            leave=False, **shape)
      self._filter = _ClearBarFirst(self._bar)
      logging.get_absl_handler().python_handler.addFilter(self._filter)

  def update(self, step, loss=None):
    """Moves the display to `step` (the global step just reached)."""
    if self._bar is not None:
      self._bar.update(step - self._bar.n)
      if loss is not None:
        self._bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
      return
    now = self.clock()
    if now - self._last_line < self.interval_s and step < self.total:
      return
    self._last_line = now
    elapsed = max(now - self._began, 1e-9)
    steps_per_second = (step - self.start) / elapsed
    eta = (self.total - step) / steps_per_second if steps_per_second > 0 else float("inf")
    logging.info("progress: step %d/%d (%.0f%%)  %s examples/s  ETA %s", step, self.total,
                 100.0 * step / max(self.total, 1),
                 f"{steps_per_second * self.batch_size:,.0f}",
                 _eta(eta) if eta != float("inf") else "unknown")

  def close(self):
    """Removes the bar (and its logging filter)."""
    if self._bar is not None:
      logging.get_absl_handler().python_handler.removeFilter(self._filter)
      self._bar.close()
      self._bar = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
