"""What every entry point shares: quiet logs, one-line errors, exit statuses, flag parsing.

An error the user can fix is one sentence on stderr, `PROGRAM: message`, and an exit status:
2 for a bad flag, config, dataset or workdir (flag parsing included), 1 when training cannot go
on or a write ran out of storage (errors.out_of_storage), 128 + signal number after
SIGTERM/SIGINT (a checkpoint was written). The traceback is logged only with --verbosity >= 1.

A default run prints tfvae's own log lines and the warnings and errors of every module; with
--verbosity >= 1 the INFO lines of TensorFlow's modules and its C++ start-up lines come back.

Each entry point is written as

    from tfvae import cli
    if __name__ == "__main__":
      cli.quiet_start()  # before TensorFlow is imported
    ...
    def main(argv):
      ...  # parse and check the flags (no TensorFlow needed), then
      cli.import_tensorflow()
      ...
    if __name__ == "__main__":
      define_flags()
      cli.run("tfvae.NAME", main)
"""

import atexit
import contextlib
import logging as std_logging
import os
import re
import signal
import sys
import threading

from absl import app
from absl import flags
from absl import logging

from tfvae import errors

# TensorFlow's native start-up lines that TF_CPP_MIN_LOG_LEVEL cannot silence: they are printed
# before its C++ logging is initialized, once per native library (TF and tf_keras).
_NATIVE_LINE = re.compile(r"^([IWE]\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log "
                          r"messages before absl::InitializeLog\(\)|To enable the following "
                          r"instructions:)")


def _requested_verbosity(argv):
  """The --verbosity/-v value on the command line (absl's flag), before flags are parsed."""
  for i, arg in enumerate(argv):
    match = re.fullmatch(r"--?(?:verbosity|v)(?:=(-?\d+))?", arg)
    if match:
      value = match.group(1) or (argv[i + 1] if i + 1 < len(argv) else "0")
      try:
        return int(value)
      except ValueError:
        return 0
  return 0


@contextlib.contextmanager
def _native_stderr_filtered():
  """Drops TensorFlow's native start-up lines written to file descriptor 2 inside the block;
  every other line is passed on."""
  sys.stderr.flush()
  read_fd, write_fd = os.pipe()
  saved = os.dup(2)
  os.dup2(write_fd, 2)
  os.close(write_fd)
  kept = []

  def pump():
    with os.fdopen(read_fd, "rb") as pipe:
      for line in pipe:
        if not _NATIVE_LINE.match(line.decode("utf-8", "replace")):
          kept.append(line)

  thread = threading.Thread(target=pump, daemon=True)
  thread.start()
  try:
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)  # closes the pipe's last write end: the pump sees EOF
    os.close(saved)
    thread.join()
    for line in kept:
      os.write(2, line)


_QUIET = {"on": False}


def quiet_start(argv=None):
  """Quiets TensorFlow's start-up, unless --verbosity >= 1; imports nothing heavy.

  Sets TF_CPP_MIN_LOG_LEVEL=3 (unless already set) so TensorFlow's C++ INFO/WARNING/ERROR lines
  (e.g. "failed call to cuInit" on a machine without a GPU) are not printed, and has
  `import_tensorflow` drop the native lines printed before that setting takes effect. Call it
  from an entry point's __main__ before anything imports TensorFlow.
  """
  if _requested_verbosity(sys.argv if argv is None else argv) >= 1:
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  # TF's Python logger adds its own handler ("INFO:tensorflow:...") when the root logger has
  # none yet; absl's handler is what app.run installs, so install it first.
  logging.use_absl_handler()
  _QUIET["on"] = True


def import_tensorflow():
  """Imports TensorFlow and TFP (several seconds), without their native start-up lines after
  `quiet_start`.

  Entry points call it once the flags are parsed and checked, so a mistyped flag or value is
  reported without paying for TensorFlow's import; those that define the Config's flags import
  it before (config_flags.define_flags: each family's config lives beside its model). A no-op
  once TensorFlow is imported.
  """
  if "tensorflow" in sys.modules:
    return
  if not _QUIET["on"]:
    import tensorflow  # pylint: disable=import-outside-toplevel,unused-import
    return
  with _native_stderr_filtered():
    import tensorflow  # pylint: disable=import-outside-toplevel,unused-import,redefined-outer-name
    import tensorflow_probability  # pylint: disable=import-outside-toplevel,unused-import


class TfvaeInfoOnly:
  """Drops the INFO lines of other modules (TF's saver, signature renames); keeps tfvae's."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "tfvae" in record.pathname


def quiet_tf_info_logs():
  """Keeps WARNING and above from every module, INFO only from tfvae's own (--verbosity < 1)."""
  if logging.get_verbosity() < 1:
    logging.get_absl_handler().python_handler.addFilter(TfvaeInfoOnly())


def exit_with(program, error, code):
  """Prints `program: error` on stderr and exits with `code`."""
  if logging.get_verbosity() >= 1:
    logging.exception("")
  else:  # the last line stays the message: no TF warnings from objects deleted at exit (the
    # "unrestored values" of a checkpoint that did not fit)
    std_logging.getLogger("tensorflow").setLevel(std_logging.ERROR)
  print(f"{program}: {error}", file=sys.stderr)
  sys.exit(code)


def _raise_stopped(signum, frame):
  del frame
  signal.signal(signum, signal.SIG_DFL)  # a second signal stops at once (e.g. inside a TF op)
  raise errors.Stopped(signum)


def _raise_on_stop_signals():
  """SIGTERM/SIGINT raise errors.Stopped (one line, status 128 + signum) instead of a silent
  exit or a KeyboardInterrupt traceback; the training loop replaces them with its own
  (finish the loop, write a checkpoint: tfvae/training/run.py) while it runs."""
  if threading.current_thread() is threading.main_thread():
    for signum in (signal.SIGTERM, signal.SIGINT):
      signal.signal(signum, _raise_stopped)


@contextlib.contextmanager
def user_errors(program):
  """Turns the errors a user can act on into one line and an exit status (see module doc)."""
  try:
    yield
  except (errors.ConfigError, errors.DataError, FileNotFoundError) as e:
    exit_with(program, e, 2)
  except errors.Stopped as e:
    exit_with(program, e, 128 + e.signum)
  except Exception as e:  # pylint: disable=broad-except
    out_of_storage = errors.out_of_storage(e)
    if out_of_storage:
      exit_with(program, out_of_storage, 1)
    if isinstance(e, errors.TrainingError):
      exit_with(program, e, 1)
    if isinstance(e, errors.Interrupted):
      exit_with(program, e, 128 + e.signum)
    raise


_HELP_FLAGS = ("-h", "-?", "--help", "--helpshort", "--helpfull", "--helpxml")


def _flags_parser(program):
  def parse(argv):
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      print(f"{program}: {e} (--help lists the flags)", file=sys.stderr)
      sys.exit(2)
    except SystemExit:
      if any(arg in _HELP_FLAGS for arg in argv[1:]):
        sys.exit(0)  # absl exits 1 after printing the help; asking for help is no failure
      raise
  return parse


def run(program, main):
  """`absl.app.run(main)` with the conventions of the module docstring.

  Args:
    program: the name in messages, e.g. "tfvae.train".
    main: callable(argv) -> None; positional arguments are refused before it is called, and
      the errors of `user_errors` it raises become one line and an exit status.
  """

  def wrapped(argv):
    quiet_tf_info_logs()
    _raise_on_stop_signals()
    if len(argv) > 1:
      exit_with(program, f"unexpected arguments: {' '.join(argv[1:])} (flags are written "
                "--name=value; --help lists them)", 2)
    with user_errors(program):
      main(argv)

  try:
    app.run(wrapped, flags_parser=_flags_parser(program))
  except SystemExit as e:  # app.run always ends with one
    _exit_now(e.code)


def _exit_now(code):
  """Ends the process with exit status `code` without Python's teardown of TensorFlow's modules.

  That teardown took 1.1 s of every command's wall time (`python -c "import tensorflow,
  tensorflow_probability"` 5.2 s against 4.1 s ending in os._exit; 2-core Intel Xeon,
  2026-12-02). The atexit handlers still run (logging's flush among them) and the standard
  streams are flushed; every file tfvae writes is closed before its entry point returns. A
  multi-worker run (TF_CONFIG set) exits the usual way, letting its servers shut down.
  """
  if "TF_CONFIG" in os.environ or not isinstance(code, (int, type(None))):
    raise SystemExit(code)
  atexit._run_exitfuncs()  # pylint: disable=protected-access
  for stream in (sys.stdout, sys.stderr):
    stream.flush()
  os._exit(code or 0)  # pylint: disable=protected-access
