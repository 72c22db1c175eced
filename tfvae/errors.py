"""The errors a user can act on; each message names the flag, file or shape at fault.

Entry points turn ConfigError and DataError into one line and exit status 2 (tfvae/cli.py);
training's own errors (TrainingError, Interrupted) live in tfvae/training/run.py.
"""


class ConfigError(ValueError):
  """A configuration that cannot run (as given, or in that workdir); the message names the flag."""


class DataError(ValueError):
  """A dataset cannot be had or read; the message names the flag or file and what to do."""
