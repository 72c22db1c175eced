"""One writer per run folder: an exclusive lock on WORKDIR/.tfvae.lock for every writing command.

`tfvae.train` (`tfvae.fit`), `tfvae.evaluate` (`TrainedModel.evaluate` / `m1_accuracy` when
they write), `tfvae.export` (`TrainedModel.export`), `tfvae.visualize` (`visualize.draw`) and
`tfvae.tune` (`tuning.search.search`) hold it while they run. A second command on the same
workdir is refused before it writes anything (training: once its data are read and checked)
with WorkdirInUse, whose one line names the holder (pid, host, command, since when); reading a
run (`tfvae.load`, the SavedModel) takes no lock.

The lock is `flock(2)` on the file (NFS: emulated with POSIX byte-range locks by Linux), so the
kernel releases it when its process dies, even by kill -9; the holder's description is written
into the file and erased at a clean release, so a description found in a lock that could be
taken is that of a process that died: it is taken over with a warning. A multi-worker training
is locked by its chief. Nested calls in one process on the same folder (train's final export)
share the lock the outer call took; a tune's trials lock their own folders. The lock is
between processes: two threads of one process on one workdir are not kept apart.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import sys

from absl import logging

from tfvae.errors import ConfigError
from tfvae.errors import ForeignLink

LOCK_FILENAME = ".tfvae.lock"

_held = {}  # realpath of the workdir -> [file descriptor, depth], in this process


class WorkdirInUse(ConfigError):
  """Another process holds the workdir's lock; the message names it."""


def _describe(info):
  return (f"pid {info.get('pid')} on {info.get('host')} ({info.get('command')}), since "
          f"{info.get('since')}")


def _read_info(fd):
  os.lseek(fd, 0, os.SEEK_SET)
  text = os.read(fd, 65536).decode("utf-8", "replace")
  try:
    info = json.loads(text)
  except ValueError:
    return None
  return info if isinstance(info, dict) else None


def _open(workdir):
  """The lock file's descriptor, opened for writing, or a one-line error on the workdir."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f"--workdir={workdir} is a file, not a folder.")
  path = os.path.join(workdir, LOCK_FILENAME)
  try:
    os.makedirs(workdir, exist_ok=True)
    # O_NOFOLLOW: a link there is refused, never written through (tfvae/workdir.py's link policy)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
  except OSError as e:
    if e.errno == errno.ELOOP and os.path.islink(path):
      raise ForeignLink(f"{path} is a link (to {os.readlink(path)}): tfvae writes its lock only "
                        "into a plain file, never through a link. Remove the link (rm "
                        f"{path} keeps its target) and re-run.") from None
    raise ConfigError(f"--workdir={workdir} is not writable ({e.strerror}): the command writes "
                      "its results and a lock file there. Copy the run to a folder you can write "
                      "(cp -rL) and run it there.") from None


def holder(workdir):
  """Who else holds the lock of `workdir` ("pid P on HOST (COMMAND), since T"), or None: no lock
  file, a free lock, or one this process holds. Takes nothing and creates nothing (a shared
  flock tried for an instant); for messages, e.g. a run whose training has not yet written
  config.json."""
  if os.path.realpath(workdir) in _held:
    return None
  try:
    fd = os.open(os.path.join(workdir, LOCK_FILENAME), os.O_RDONLY | os.O_NOFOLLOW)
  except OSError:
    return None
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EAGAIN, errno.EACCES):
        return None
      info = _read_info(fd)
      return _describe(info) if info else "another process"
    fcntl.flock(fd, fcntl.LOCK_UN)
    return None
  finally:
    os.close(fd)


def refuse_unfinished(workdir, missing):
  """Raises WorkdirInUse naming the holder if another process holds `workdir`'s lock (a training
  that has not written `missing` yet, e.g. config.json); returns otherwise."""
  who = holder(workdir)
  if who:
    raise WorkdirInUse(f"--workdir={workdir} has no {missing} yet: it is in use by {who}, which "
                       f"has not written it yet. Wait for it (or stop it), then run again.")


@contextlib.contextmanager
def hold(workdir, command=None):
  """Holds the exclusive lock of `workdir` (created if missing) inside the block.

  Args:
    workdir: a run folder (or a search folder of tfvae.tune).
    command: what to tell a refused command; default this process's command line.

  Raises:
    WorkdirInUse: if another process holds the lock (its pid, host, command and start time are
      in the message).
    ConfigError: if workdir is a file or cannot be written.
    tfvae.errors.ForeignLink: if WORKDIR/.tfvae.lock is a link.
  """
  key = os.path.realpath(workdir)
  if key in _held:  # a nested call of this process: the outer one holds it
    _held[key][1] += 1
    try:
      yield
    finally:
      _held[key][1] -= 1
    return
  command = command or " ".join([os.path.basename(sys.argv[0]) if sys.argv else "python",
                                 *sys.argv[1:]])[:300]
  fd = _open(workdir)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    info = _read_info(fd)
    os.close(fd)
    if e.errno not in (errno.EAGAIN, errno.EACCES):  # e.g. ENOLCK: NFS without locking
      raise ConfigError(f"--workdir={workdir}: cannot lock {LOCK_FILENAME} there "
                        f"({e.strerror}); use a folder on a filesystem with file locks.") \
          from None
    raise WorkdirInUse(
        f"--workdir={workdir} is in use by " + (_describe(info) if info else "another process")
        + ": one command at a time writes a run folder. Wait for it to end (or stop it), or "
        "use another --workdir.") from None
  previous = _read_info(fd)
  if previous:
    logging.warning("Took over the lock of %s left by %s: that process is gone.", workdir,
                    _describe(previous))
  info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
          "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
  os.ftruncate(fd, 0)
  os.pwrite(fd, json.dumps(info).encode(), 0)
  os.fsync(fd)
  _held[key] = [fd, 1]
  try:
    yield
  finally:
    del _held[key]
    try:
      os.ftruncate(fd, 0)  # a clean release leaves no description behind
    finally:
      os.close(fd)  # releases the flock

