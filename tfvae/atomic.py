"""Files replaced whole: written to NAME.tmp, fsynced, then renamed onto NAME (atomic on POSIX),
so a reader sees the old file or the new one, never a part; a failed write names its file."""

import contextlib
import json
import os


@contextlib.contextmanager
def replacing(path, mode="w", **open_kwargs):
  """Opens PATH.tmp for writing; once the block ends, fsyncs it and renames it onto `path`.

  Raises:
    OSError: of a failed write (e.g. ENOSPC, a full disk), its filename set to PATH.tmp (a
      failed write of an open file has none); `path` is then unchanged and PATH.tmp is left
      for tfvae.workdir.remove_leftovers.
  """
  temporary = path + ".tmp"
  try:
    with open(temporary, mode, **open_kwargs) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())  # on disk before the rename: never an empty file after a crash
    os.replace(temporary, path)
  except OSError as e:
    if e.filename is None:
      raise OSError(e.errno, e.strerror, temporary) from e
    raise


def write_json(path, value, **dump_kwargs):
  """Replaces `path` with json.dump(value, **dump_kwargs) (see `replacing`)."""
  with replacing(path) as f:
    json.dump(value, f, **dump_kwargs)
