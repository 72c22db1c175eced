"""The errors a user can act on; each message names the flag, file or shape at fault.

Entry points turn ConfigError and DataError into one line and exit status 2, TrainingError into
status 1 and Interrupted into 128 + signal (tfvae/cli.py). Every error a caller of the Python
API catches is exported from `tfvae` (tfvae/__init__.py): these, and the ConfigErrors defined
beside the code that raises them (lock.WorkdirInUse, training.checkpoints.CheckpointMismatch,
user_networks.NetworkError).
"""

import errno
import os
import re
import signal


class ConfigError(ValueError):
  """A configuration that cannot run (as given, or in that workdir); the message names the flag."""


class DataError(ValueError):
  """A dataset cannot be had or read; the message names the flag or file and what to do."""


class ForeignLink(ConfigError):
  """A link in a run folder that tfvae would write or delete through points where tfvae did not
  make it (the link policy: tfvae/workdir.py); the message names the link and its target."""


class TrainingError(RuntimeError):
  """Training cannot go on (e.g. non-finite updates in a row); the last checkpoint is intact."""


class Interrupted(Exception):
  """SIGTERM/SIGINT stopped training after a checkpoint was written; the same call resumes."""

  def __init__(self, signum, step, workdir):
    self.signum = signum
    super().__init__(f"Stopped by {signal.Signals(signum).name} at step {step}; a checkpoint "
                     f"was written to {os.path.join(workdir, 'ckpt')}. Re-run the same command "
                     "to resume from it.")


class Stopped(BaseException):
  """SIGTERM/SIGINT outside the training loop (an evaluation, an export, a final evaluation):
  raised by the handler tfvae/cli.py installs; the command exits with status 128 + signum. A
  BaseException, as KeyboardInterrupt is: no `except Exception` swallows it."""

  def __init__(self, signum):
    self.signum = signum
    super().__init__(f"Stopped by {signal.Signals(signum).name} before it finished. What it "
                     "had written is intact (each file is replaced whole, or not at all); "
                     "re-run the same command to finish.")


# Writes that fail for want of storage: a full disk, a full quota, a file-size limit.
_STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_STORAGE_TEXT = re.compile(r"(\S+); (" + "|".join(os.strerror(n) for n in _STORAGE_ERRNOS) + ")")


def out_of_storage(error):
  """The one-line message for an exception raised by a write that ran out of storage, or None.

  Recognizes OSError with errno ENOSPC, EDQUOT or EFBIG (tfvae's own writes through
  tfvae/atomic.py name the file) and TensorFlow's OpErrors whose message has "PATH; " and
  their strerror (TF's file writers). Tested on a checkpoint write and on eval.json
  (tests/test_storage.py).
  """
  if isinstance(error, OSError) and error.errno in _STORAGE_ERRNOS:
    path, reason = error.filename, error.strerror
  elif getattr(error, "error_code", None) is not None and (
      found := _STORAGE_TEXT.search(getattr(error, "message", str(error)))):
    path, reason = found.groups()
  else:
    return None
  return (f"writing {path} failed: {reason}. Free space there (or raise the quota or file-size "
          "limit) and re-run the same command: what was written before is intact (a "
          "half-written checkpoint or file is never used, and the next training removes it).")
