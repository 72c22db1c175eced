"""How a training run stops short: stop signals, `Interrupted`, `TrainingError` and the checks
and messages that decide them (what is true of the checkpoints, which final metrics diverged)."""

import os
import signal
import threading

import tensorflow as tf

from tfvae import workdir as workdir_lib
from tfvae.training import distribute
from tfvae.errors import Interrupted, TrainingError  # noqa: F401 (defined there, used here)


class StopSignals:
  """Context manager: SIGTERM/SIGINT set `received` instead of killing the process (the loop
  checks it at every loop boundary, saves and raises Interrupted)."""

  def __init__(self):
    self.received = None
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGTERM, signal.SIGINT):
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    self.received = signum

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


def stop_if_signalled(stop, strategy, trainer, writers, step, workdir, saved):
  """Raises Interrupted if any worker received SIGTERM or SIGINT, after a checkpoint at
  `step` (written now unless `saved`). Every worker stops at the same step (a collective when
  there are several) and saves or not alike."""
  sigterm, sigint = distribute.any_worker(
      strategy, [stop.received == signal.SIGTERM, stop.received == signal.SIGINT])
  if sigterm or sigint:
    if not saved:
      trainer.save()
    writers["train"].flush()
    raise Interrupted(signal.SIGTERM if sigterm else signal.SIGINT, step, workdir)


def last_checkpoint(workdir):
  """What is true of WORKDIR/ckpt, for a message after training failed."""
  latest = tf.train.latest_checkpoint(os.path.join(workdir, "ckpt"))
  if latest is None:
    return "No checkpoint was written before it (nothing to resume from)."
  return (f"The last checkpoint, of step {latest.rsplit('-', 1)[1]} (before the updates that "
          f"failed), is intact in {os.path.dirname(latest)}.")


def too_many_skips(consecutive, limit, step, workdir):
  """TrainingError after `consecutive` >= --max_consecutive_skips=`limit` skipped updates."""
  return TrainingError(
      f"{consecutive} updates in a row had a non-finite loss or gradient "
      f"(--max_consecutive_skips={limit}), at step {step}. " + last_checkpoint(workdir)
      + " Try a lower --learning_rate or --clip_grad_norm.")


# A run that skipped at least this fraction of its updates has not trained (its weights are
# their initialization, or nearly): --free_bits=inf or --beta=nan skip every one.
UNTRAINED_IF_SKIPPED = 0.9
SKIPS_KEY = "skipped_updates"  # eval.json: {"step", "skipped", "updates"} of the last training


def skips(workdir, step, skipped, updates):
  """{"step", "skipped", "updates"}: the updates up to `step` that this process ran (`updates`)
  and skipped (`skipped`); when it ran none (a later command evaluating a finished training),
  those eval.json recorded for `step`, so that a rerun does not export what the training
  refused."""
  if not updates:
    try:
      recorded = workdir_lib.read_eval_json(workdir).get(SKIPS_KEY)
    except workdir_lib.DamagedEvalJson:  # set aside when the results are merged
      recorded = None
    if isinstance(recorded, dict) and recorded.get("step") == step:
      return recorded
  return {"step": step, "skipped": skipped, "updates": updates}


def untrained(record, workdir):
  """TrainingError when at least UNTRAINED_IF_SKIPPED of the updates of `record` (what `skips`
  returns) were skipped for a non-finite loss or gradient; else None."""
  skipped, updates = record["skipped"], record["updates"]
  if updates <= 0 or skipped < UNTRAINED_IF_SKIPPED * updates:
    return None
  return TrainingError(
      f"{skipped} of the {updates} updates up to step {record['step']} were skipped for a "
      f"non-finite loss or gradient, so only {updates - skipped} changed the weights: the model "
      "has not trained, so it was not exported (its checkpoints are in "
      f"{os.path.join(workdir, 'ckpt')}). Try a lower --learning_rate, --beta or "
      "--clip_grad_norm, with --overwrite or in another --workdir.")


# Non-finite final metrics that mean the model diverged (an accuracy is NaN by design on a split
# without labels).
DIVERGED_IF_NONFINITE = ("loss", "elbo", "rate", "distortion", "iwae_bound", "nll",
                         "squared_error")


def diverged(results, checkpoint_step):
  """TrainingError when a final metric of results["validation"/"test"] that a working model
  keeps finite (DIVERGED_IF_NONFINITE) is not finite, else None."""
  keys = {split: found for split in ("validation", "test") if (found := [
      k for k in workdir_lib.nonfinite_keys(results[split]) if k in DIVERGED_IF_NONFINITE])}
  if not keys:
    return None
  return TrainingError(
      f"The final evaluation at step {checkpoint_step} is not finite (" + "; ".join(
          f"{split}: {', '.join(found)}" for split, found in keys.items())
      + "): the model diverged, so it was not exported. eval.json records null for those "
      "values. Train again with a lower --learning_rate or --clip_grad_norm (with "
      "--overwrite, or in another --workdir).")
