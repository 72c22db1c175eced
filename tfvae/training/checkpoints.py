"""Which checkpoint of WORKDIR/ckpt to restore: the newest that reads; a lost index recovered.

tf.train.CheckpointManager writes each checkpoint as ckpt-<step>.index + ckpt-<step>.data-*,
then rewrites the index file ckpt/checkpoint that lists them. Damage found on disk and what
tfvae does about it:

  - a checkpoint that does not read (a truncated or deleted data file: `IndexError: Read less
    bytes than requested`): skipped with a warning naming it and why; the next older one the
    index lists is restored;
  - an index that is missing, does not parse (ASCII or binary garbage), or lists checkpoints
    outside its folder (absolute paths of a run folder since moved or copied): every
    complete-looking checkpoint on disk is a candidate (newest first), and a training (which holds
    the workdir's lock) rewrites the index from them. A run only ever uses, and its
    CheckpointManager only ever deletes, the checkpoints in its own folder;
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


def _listed(ckpt_dir):
  """(the prefixes the index lists, oldest first, None) when it is usable; else (None, why):
  "missing", "unreadable", or "stale: ..." when it lists a checkpoint outside ckpt_dir."""
  if not os.path.exists(os.path.join(ckpt_dir, INDEX_FILENAME)):
    return None, "missing"
  try:
    state = tf.train.get_checkpoint_state(ckpt_dir)  # None for ASCII garbage
  except UnicodeDecodeError:  # binary garbage
    state = None
  if state is None:
    return None, "unreadable"
  # get_checkpoint_state has already joined the index's relative names onto ckpt_dir (which
  # may itself be relative: --workdir=runs/mine): join nothing more. Absolute names are kept.
  listed = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
  here = os.path.realpath(ckpt_dir)
  for path in listed:
    if os.path.realpath(os.path.dirname(path)) != here:
      return None, f"stale: it lists {path}, outside its folder (a run folder moved or copied)"
  return listed, None


def candidates(ckpt_dir):
  """The checkpoints to try, newest first: those the index lists; where the index is missing,
  unreadable or lists checkpoints of another folder, those on disk (`on_disk`). [] when there
  is none."""
  listed, _ = _listed(ckpt_dir)
  return on_disk(ckpt_dir) if listed is None else list(reversed(listed))


def write_index(ckpt_dir, paths):
  """Rewrites ckpt_dir's index to list `paths` (newest first), the newest as the latest."""
  names = [os.path.basename(p) for p in paths]  # relative: the workdir may move
  tf.compat.v1.train.update_checkpoint_state(ckpt_dir, names[0],
                                             all_model_checkpoint_paths=names[::-1])


def recover_index(ckpt_dir):
  """Rewrites a missing, unreadable or foreign index (`candidates`) from the checkpoints on disk
  (a warning says so), before a CheckpointManager reads it: one that listed another folder's
  checkpoints would delete them. Without a checkpoint on disk such an index is removed.

  Call it only while holding the workdir's lock (tfvae/lock.py). Returns the prefixes listed.
  """
  paths = on_disk(ckpt_dir)
  listed, why = _listed(ckpt_dir)
  index = os.path.join(ckpt_dir, INDEX_FILENAME)
  if listed is not None or (why == "missing" and not paths):
    return []
  if not paths:  # a CheckpointManager would fail on it, or delete what it lists
    logging.warning("%s is %s; removed it (no checkpoint on disk).", index, why)
    os.remove(index)
    return []
  logging.warning("%s is %s; rebuilt it from the checkpoints on disk: %s.", index, why,
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
