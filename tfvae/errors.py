"""The errors a user can act on; each message names the flag, file or shape at fault.

Entry points turn ConfigError and DataError into one line and exit status 2 (tfvae/cli.py);
training's own errors (TrainingError, Interrupted) live in tfvae/training/failures.py.
"""

import signal


class ConfigError(ValueError):
  """A configuration that cannot run (as given, or in that workdir); the message names the flag."""


class DataError(ValueError):
  """A dataset cannot be had or read; the message names the flag or file and what to do."""


class Stopped(BaseException):
  """SIGTERM/SIGINT outside the training loop (an evaluation, an export, a final evaluation):
  raised by the handler tfvae/cli.py installs; the command exits with status 128 + signum. A
  BaseException, as KeyboardInterrupt is: no `except Exception` swallows it."""

  def __init__(self, signum):
    self.signum = signum
    super().__init__(f"Stopped by {signal.Signals(signum).name} before it finished. What it "
                     "had written is intact (each file is replaced whole, or not at all); "
                     "re-run the same command to finish.")
