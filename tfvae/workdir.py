"""A run folder's files: eval.json (one merged file, written atomically), the export's record,
and the removal of what interrupted writes leave behind (`remove_leftovers`).

Every command that evaluates a run (`tfvae.train` at its end, `tfvae.evaluate`, M1) merges its
entries into eval.json; none rewrites it from scratch, so a re-run or an extended training never
deletes another command's numbers. Keys say what an entry is:

  "step"                    the step of the latest training's final evaluation
  "final"                   the keys of that evaluation's entries: {"validation": ..., "test": ...}
  "validation_K10"          split and K of the importance-weighted bound (generative models)
  "test_K5000"              ... so a K=10 number never replaces a K=5000 one
  "test"                    a split evaluated without an importance-weighted bound (AEs, M2)
  "m1_test_100labels_seed0" M1 (tfvae.evaluation.ssl): scored split, labeled examples, label seed

Each entry records the "step" of the checkpoint it evaluated: after training is extended, an
entry from an earlier step stays (with its step) until that evaluation is run again.

Links in a run folder: the one policy (docs/running.md says it to users).
  followed  the workdir itself and the folders above it; a folder link inside it (ckpt/,
            tensorboard/, figures/, e.g. onto another disk), where tfvae writes new files of its
            own; the `export` link when it points to an export.<digits> folder beside it, as
            tfvae makes it (`export_target`); links to files tfvae only reads (config.json).
  replaced  a link where tfvae replaces a whole file (eval.json, config.json, figures/*.png,
            best.json): the rename replaces the link itself, its target is never written; the
            temporary file is a fresh name, never a link (tfvae/atomic.py).
  removed   only tfvae's own names (temporary files, export.<digits> folders), and a link among
            them as a link: nothing is deleted through a link (`remove_leftovers`, --overwrite).
  refused   with errors.ForeignLink (one line, exit status 2): an `export` link to anything but
            an export.<digits> folder beside it, and a .tfvae.lock that is a link (tfvae/lock.py).
"""

import json
import math
import os
import re
import shutil

from absl import logging

from tfvae import atomic
from tfvae.errors import ConfigError, ForeignLink

EVAL_FILENAME = "eval.json"


def eval_key(split, metrics):
  """The eval.json key of an Evaluator result: SPLIT_K<K> with an iwae_bound, else SPLIT.

  Args:
    split: "train", "validation" or "test".
    metrics: dict from evaluation.Evaluator, with "num_importance_samples" when it has an
      "iwae_bound".
  """
  if "iwae_bound" in metrics:
    return f"{split}_K{metrics['num_importance_samples']}"
  return split


def m1_key(split, num_labels, label_seed):
  """The eval.json key of an M1 result."""
  return f"m1_{split}_{num_labels}labels_seed{label_seed}"


class DamagedEvalJson(ConfigError):
  """WORKDIR/eval.json does not parse as a JSON object (truncated, garbage, `[1, 2]`)."""


def read_eval_json(workdir):
  """WORKDIR/eval.json as a dict ({} when there is none).

  Raises:
    DamagedEvalJson: naming the file, when it does not hold a JSON object.
  """
  path = os.path.join(workdir, EVAL_FILENAME)
  if not os.path.exists(path):
    return {}
  try:
    with open(path, "rb") as f:
      values = json.loads(f.read().decode("utf-8"))
  except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
    raise DamagedEvalJson(f"{path} is damaged ({type(e).__name__}: "
                          f"{(str(e).splitlines() or [''])[0][:200]})") from None
  if not isinstance(values, dict):
    raise DamagedEvalJson(f"{path} is damaged (a JSON {type(values).__name__}, not an object)")
  return values


def _set_aside(path):
  """Renames the file `path` to the first free PATH.damaged[.N]; returns the new name."""
  aside, n = f"{path}.damaged", 1
  while os.path.lexists(aside):
    aside, n = f"{path}.damaged.{n}", n + 1
  os.rename(path, aside)
  return aside


def _finite(value):
  if isinstance(value, float):
    return math.isfinite(value)
  if isinstance(value, (list, tuple)):
    return all(_finite(v) for v in value)
  if isinstance(value, dict):
    return all(_finite(v) for v in value.values())
  return True


def _nulled(value):
  if isinstance(value, (list, tuple)):
    return [_nulled(v) for v in value]
  if isinstance(value, dict):
    return {k: _nulled(v) for k, v in value.items()}
  return None if isinstance(value, float) and not math.isfinite(value) else value


def nonfinite_keys(metrics):
  """The keys of `metrics` (a dict) whose values are or hold non-finite floats (NaN, +-inf)."""
  return sorted(k for k, v in metrics.items() if not _finite(v))


def strict(metrics):
  """`metrics` (a dict) as strict JSON takes it: each non-finite float becomes None, and the
  entry says which values were ("nonfinite": key -> the value as Python writes it)."""
  bad = nonfinite_keys(metrics)
  if not bad:
    return metrics
  return {**{k: _nulled(v) if k in bad else v for k, v in metrics.items()},
          "nonfinite": {k: repr(metrics[k])[:200] for k in bad}}


def merge_eval_json(workdir, entries):
  """Merges `entries` (key -> value) into WORKDIR/eval.json; other keys are kept.

  Written to a temporary name, flushed to disk and renamed, so a reader or a kill -9 sees the
  previous file or the new one, never a torn one. The file is strict JSON: a non-finite metric
  is written as null, and its entry's "nonfinite" names it (`strict`).

  A damaged eval.json (one that is not a JSON object) is renamed to eval.json.damaged (or
  .damaged.N), never overwritten, with a warning naming both; the merge then starts from {}.
  Call it only while holding the workdir's lock (tfvae/lock.py).

  Returns:
    The merged dict.
  """
  try:
    old = read_eval_json(workdir)
  except DamagedEvalJson as e:
    aside = _set_aside(os.path.join(workdir, EVAL_FILENAME))
    logging.warning("%s: renamed it to %s, which is kept as it was, and wrote a new %s with this "
                    "command's results (copy any you need from the old file).", e,
                    os.path.basename(aside), EVAL_FILENAME)
    old = {}
  merged = {k: strict(v) if isinstance(v, dict) else _nulled(v)  # old NaN entries too
            for k, v in {**old, **entries}.items()}
  atomic.write_json(os.path.join(workdir, EVAL_FILENAME), merged, indent=2, allow_nan=False)
  return merged


# Written into every SavedModel folder by tfvae.export: the step exported and the input contract.
EXPORT_INFO = os.path.join("assets.extra", "tfvae.json")


def own_export(name, entry):
  """Whether `entry` (a name in the folder of an export path NAME) is tfvae's own: a SavedModel
  folder NAME.<digits>, or NAME.<digits>.link / NAME.<digits>.old while an export swaps."""
  return re.fullmatch(re.escape(name) + r"\.\d+(\.link|\.old)?", entry) is not None


def export_target(path):
  """The folder the export link `path` points to, or None when `path` is no link.

  An export replaces (and deletes) the folder its link points to, so only a link as tfvae makes
  it is followed: relative, to a folder NAME.<digits> beside it (NAME = basename of `path`).

  Returns:
    str, that folder (it may be missing), or None.

  Raises:
    ForeignLink: if `path` is a link to anything else (elsewhere, an absolute path, another link).
  """
  if not os.path.islink(path):
    return None
  parent, name = os.path.split(path)
  pointee = os.readlink(path)
  target = os.path.join(parent, pointee)
  if (re.fullmatch(re.escape(name) + r"\.\d+", pointee) and not os.path.islink(target)
      and (os.path.isdir(target) or not os.path.lexists(target))):
    return target
  raise ForeignLink(
      f"{path} is a link to {pointee}, not to a folder {name}.<digits> that tfvae made beside "
      "it: a new export would delete the folder it links to, so tfvae refuses. Remove the link "
      f"(rm {path} keeps its target) and re-run.")


def exported_step(workdir):
  """The step of the model in WORKDIR/export (from its assets.extra/tfvae.json), or None."""
  path = os.path.join(workdir, "export", EXPORT_INFO)
  try:
    with open(path) as f:
      return json.load(f)["step"]
  except (OSError, ValueError, KeyError):
    return None


def finished_results(workdir, step):
  """The final results of a finished training at `step`, or None if anything is missing.

  A training is finished at `step` when eval.json holds its final validation and test entries
  at that step ("final" names their keys) and WORKDIR/export holds the model of that step. A run
  killed during its final evaluation or export is therefore not finished: re-running the command
  evaluates and exports it.

  A damaged eval.json, or one whose entries are not what a training writes (`"final": null`),
  is no record of a finished run either: None, and the final evaluation that follows sets it
  right (`merge_eval_json`).

  Returns:
    {"step", "validation", "test"} as `run.train_and_evaluate` returns them, or None.
  """
  try:
    results = read_eval_json(workdir)
  except DamagedEvalJson:
    return None
  final = results.get("final")
  if not isinstance(final, dict):
    return None
  keys = [final.get(split) for split in ("validation", "test")]
  entries = dict(zip(("validation", "test"),
                     (results.get(k) if isinstance(k, str) else None for k in keys)))
  if results.get("step") != step or any(not isinstance(e, dict) or e.get("step") != step
                                        for e in entries.values()):
    return None
  if exported_step(workdir) != step:
    return None
  return {"step": step, **entries}


# What an interrupted write leaves behind (kill -9, a full disk), by folder of the workdir:
# our own temp files (NAME.<random>.tmp; NAME.tmp of older versions), TensorFlow's (a
# checkpoint's ckpt-N_temp/ folder, the index's checkpoint.tmp<uuid>), and export folders the
# export link does not point at.
_LEFTOVERS = {  # folder (relative to the workdir) -> the temp names written there
    "": re.compile(rf"^(config|eval)\.json{atomic.TEMPORARY_SUFFIX}$"),
    "ckpt": re.compile(r"^(checkpoint\.tmp[0-9a-f]+|ckpt-\d+_temp)$"),
    os.path.join("ckpt", "best"): re.compile(
        rf"^(best\.json{atomic.TEMPORARY_SUFFIX}|checkpoint\.tmp[0-9a-f]+|ckpt-\d+_temp)$"),
    "figures": re.compile(rf"^[a-z0-9_]+\.png{atomic.TEMPORARY_SUFFIX}$"),
}


def remove_leftovers(workdir):
  """Deletes the partial files of interrupted writes in WORKDIR, ckpt/, ckpt/best/, figures/.

  Call it only while holding the workdir's lock (tfvae/lock.py): another command's files in
  flight look the same. Each removal is logged. Only tfvae's own names are removed; a link among
  them is removed as a link, never followed.

  Returns:
    The list of paths removed.

  Raises:
    ForeignLink: if WORKDIR/export is a link tfvae did not make (`export_target`).
  """
  removed = []
  current = export_target(os.path.join(workdir, "export"))
  current = os.path.basename(current) if current else None
  for relative, pattern in _LEFTOVERS.items():
    folder = os.path.join(workdir, relative) if relative else workdir
    try:
      names = sorted(os.listdir(folder))
    except OSError:
      continue
    for name in names:
      path = os.path.join(folder, name)
      stale = pattern.match(name) or (folder == workdir and own_export("export", name)
                                      and name != current)
      if not stale:
        continue
      if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
      else:
        os.remove(path)
      removed.append(path)
  if removed:
    logging.warning("Removed what interrupted writes left in %s: %s", workdir,
                    ", ".join(os.path.relpath(p, workdir) for p in removed))
  return removed
