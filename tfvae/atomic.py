"""Files replaced whole: written to a fresh temporary file beside NAME, fsynced, then renamed onto
NAME (atomic on POSIX), so a reader sees the old file or the new one, never a part; a failed
write names its file.

The temporary file is NAME.<8 random characters>.tmp, created by `tempfile.mkstemp` (O_EXCL, so
never through a link or onto another file), and the rename replaces NAME itself: a link named
NAME or NAME.tmp is never written through (the link policy: tfvae/workdir.py).
"""

import contextlib
import json
import os
import tempfile

# The temporary names `replacing` writes beside NAME (mkstemp's 8 characters), and NAME.tmp of
# older versions: a regular expression to append to NAME's (tfvae.workdir.remove_leftovers).
TEMPORARY_SUFFIX = r"(\.[a-z0-9_]{8})?\.tmp"


def _file_mode():
  """0o666 less the process's umask: the mode open() would have given a new file."""
  umask = os.umask(0o022)
  os.umask(umask)
  return 0o666 & ~umask


@contextlib.contextmanager
def replacing(path, mode="w", **open_kwargs):
  """Opens a new temporary file beside `path`; once the block ends, fsyncs it and renames it
  onto `path` (a link at `path` is replaced, its target untouched).

  Args:
    path: str, the file to replace (its folder must exist).
    mode: a writing mode of open(), "w" or "wb".
    **open_kwargs: passed to open() (encoding, newline).

  Yields:
    The open file object.

  Raises:
    OSError: of a failed write (e.g. ENOSPC, a full disk), its filename set to `path`; `path` is
      then unchanged and the temporary file removed (after a kill -9 it is left for
      tfvae.workdir.remove_leftovers). Any error raised inside the block also removes it.
  """
  folder, name = os.path.split(os.path.abspath(path))
  temporary = None
  try:
    fd, temporary = tempfile.mkstemp(prefix=name + ".", suffix=".tmp", dir=folder)
    with open(fd, mode, **open_kwargs) as f:
      os.fchmod(fd, _file_mode())  # mkstemp makes it 0o600; a plain open() would not
      yield f
      f.flush()
      os.fsync(f.fileno())  # on disk before the rename: never an empty file after a crash
    os.replace(temporary, path)
  except BaseException as e:
    if temporary is not None:
      with contextlib.suppress(OSError):
        os.remove(temporary)
    # mkstemp's error names a random name, a failed write of an open file none: name `path`.
    if isinstance(e, OSError) and e.errno and (temporary is None or e.filename in (None,
                                                                                temporary)):
      raise OSError(e.errno, e.strerror, path) from e
    raise


def write_bytes(path, data):
  """Replaces `path` with the bytes `data` (see `replacing`)."""
  with replacing(path, "wb") as f:
    f.write(data)


def write_json(path, value, **dump_kwargs):
  """Replaces `path` with json.dump(value, **dump_kwargs) (see `replacing`)."""
  with replacing(path) as f:
    json.dump(value, f, **dump_kwargs)
