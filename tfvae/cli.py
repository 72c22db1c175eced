"""What the entry points (train, tune, gmm) share: quiet logging and one-line errors.

An error the user can fix is one sentence on stderr, `PROGRAM: message`, and an exit status:
2 for a bad config or dataset, 1 when training cannot go on, 128 + signal number after
SIGTERM/SIGINT (a checkpoint was written). The traceback is logged only with --verbosity >= 1.
"""

import contextlib
import sys

from absl import logging


class _TfvaeInfoOnly:
  """Drops the INFO lines of TF's own modules (saver, signature renames); keeps tfvae's."""

  def filter(self, record):
    return record.levelno >= logging.WARNING or "tfvae" in record.pathname


def quiet_tf_info_logs():
  """Keeps WARNING and above from every module, INFO only from tfvae's own."""
  logging.get_absl_handler().python_handler.addFilter(_TfvaeInfoOnly())


def exit_with(program, error, code):
  """Prints `program: error` on stderr and exits with `code`."""
  if logging.get_verbosity() >= 1:
    logging.exception("")
  print(f"{program}: {error}", file=sys.stderr)
  sys.exit(code)


@contextlib.contextmanager
def user_errors(program):
  """Turns the errors a user can act on into one line and an exit status (see module doc)."""
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  from tfvae import run  # pylint: disable=import-outside-toplevel
  try:
    yield
  except (config_lib.ConfigError, data_lib.DataError) as e:
    exit_with(program, e, 2)
  except run.TrainingError as e:
    exit_with(program, e, 1)
  except run.Interrupted as e:
    exit_with(program, e, 128 + e.signum)
