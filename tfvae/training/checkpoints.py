"""Which checkpoint of WORKDIR/ckpt to restore: the newest that reads; a lost index recovered.

tf.train.CheckpointManager writes each checkpoint as ckpt-<step>.index + ckpt-<step>.data-*,
then rewrites the index file ckpt/checkpoint that lists them. Damage found on disk and what
tfvae does about it:

  - a checkpoint that does not read (a truncated or deleted data file: `IndexError: Read less
    bytes than requested`): skipped with a warning naming it and why; the next older one the
    index lists is restored;
  - an index that is missing or does not parse: every complete-looking checkpoint on disk is a
    candidate (newest first), and a training (which holds the workdir's lock) rewrites the index
    from them;
  - files of a checkpoint the index does not list: a save interrupted before its index update;
    never picked up (the next save of that step overwrites them).
A checkpoint that reads but does not fit the model (another config) is not damage: when no
candidate restores, CheckpointMismatch says so, naming each checkpoint and its error.
"""

import os
import re

from absl import logging
import tensorflow as tf

from tfvae.errors import ConfigError

INDEX_FILENAME = "checkpoint"
_PREFIX = re.compile(r"^ckpt-(\d+)\.index$")


class CheckpointMismatch(ConfigError):
  """No checkpoint of WORKDIR/ckpt restores into the model (another config, or all damaged)."""


def on_disk(ckpt_dir):
  """Prefixes (ckpt_dir/ckpt-<step>) with an .index and a data file on disk, newest first."""
  try:
    names = set(os.listdir(ckpt_dir))
  except OSError:
    return []
  found = []
  for name in names:
    match = _PREFIX.match(name)
    if match and any(n.startswith(f"ckpt-{match.group(1)}.data-") for n in names):
      found.append((int(match.group(1)), os.path.join(ckpt_dir, name[:-len(".index")])))
  return [path for _, path in sorted(found, reverse=True)]


def candidates(ckpt_dir):
  """The checkpoints to try, newest first: those the index lists; where the index is missing or
  unreadable, those on disk (`on_disk`). [] when there is none."""
  if not os.path.exists(os.path.join(ckpt_dir, INDEX_FILENAME)):
    return on_disk(ckpt_dir)
  state = tf.train.get_checkpoint_state(ckpt_dir)
  if state is None:
    return on_disk(ckpt_dir)
  # get_checkpoint_state has already joined the index's relative names onto ckpt_dir (which
  # may itself be relative: --workdir=runs/mine): join nothing more.
  listed = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
  return list(reversed(listed))


def write_index(ckpt_dir, paths):
  """Rewrites ckpt_dir's index to list `paths` (newest first), the newest as the latest."""
  names = [os.path.basename(p) for p in paths]  # relative: the workdir may move
  tf.compat.v1.train.update_checkpoint_state(ckpt_dir, names[0],
                                             all_model_checkpoint_paths=names[::-1])


def recover_index(ckpt_dir):
  """Rewrites a missing or unreadable index from the checkpoints on disk (a warning says so).

  Call it only while holding the workdir's lock (tfvae/lock.py). Returns the prefixes listed.
  """
  paths = on_disk(ckpt_dir)
  index = os.path.join(ckpt_dir, INDEX_FILENAME)
  if not paths or (os.path.exists(index) and tf.train.get_checkpoint_state(ckpt_dir)):
    return []
  logging.warning("%s is %s; rebuilt it from the checkpoints on disk: %s.", index,
                  "unreadable" if os.path.exists(index) else "missing",
                  ", ".join(os.path.basename(p) for p in paths))
  write_index(ckpt_dir, paths)
  return paths


def restore(checkpoint, paths):
  """Restores the first of `paths` (newest first) that reads into `checkpoint`.

  Args:
    checkpoint: tf.train.Checkpoint.
    paths: checkpoint prefixes, newest first (`candidates`).

  Returns:
    (restored, skipped): the prefix restored (None when paths is empty) and the list of
    (prefix, reason) tried before it, each logged as a warning.

  Raises:
    CheckpointMismatch: if none of `paths` restores; the message names each one and its error.
  """
  skipped = []
  for path in paths:
    status = None
    try:
      status = checkpoint.restore(path)
      status.assert_existing_objects_matched()  # every object of the model has its value
    except (tf.errors.OpError, IndexError, ValueError, AssertionError) as e:
      if status is not None:
        status.expect_partial()  # no "Value in checkpoint could not be found" at exit
      reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
      skipped.append((path, reason))
      continue
    status.expect_partial()  # values not asked for (an optimizer's, to evaluate): no warning
    for bad, reason in skipped:
      logging.warning("Skipped checkpoint %s, which does not restore (%s); restored %s.", bad,
                      reason, path)
    return path, skipped
  if skipped:
    raise CheckpointMismatch(
        f"No checkpoint in {os.path.dirname(paths[0])} restores into this model: " + "; ".join(
            f"{os.path.basename(p)}: {r}" for p, r in skipped)
        + ". The checkpoints are kept. If the run's config.json was lost or changed, restore "
        "it, or train elsewhere (another --workdir).")
  return None, skipped
