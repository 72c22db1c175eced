"""The best checkpoint (lowest validation loss) kept apart from the rolling ones, and early
stopping on it.

WORKDIR/ckpt/best/ holds one checkpoint (model, optimizer, step) and best.json: {"step",
"loss"} of the evaluation that wrote it. The patience state follows from best.json and the
current step alone, so a resumed run (or one resumed with another --early_stopping_patience)
counts exactly as an uninterrupted one: the evaluations since the best one are the multiples
of --eval_every after max(best step, end of the warm-up).
"""

import json
import math
import os

from absl import logging
import tensorflow as tf

from tfvae import atomic
from tfvae.errors import ConfigError
from tfvae.training import checkpoints
from tfvae.training import distribute

BEST_DIRNAME = "best"
BEST_FILENAME = "best.json"


def warmup_end(config):
  """The step from which the loss keeps its final weights (the family's `warmup_end`: a beta
  schedule's end, else 0). Evaluations before it do not count towards patience."""
  return config.model.warmup_end()


def best_dir(workdir):
  return os.path.join(workdir, "ckpt", BEST_DIRNAME)


class DamagedBest(ConfigError):
  """WORKDIR/ckpt/best/best.json does not hold {"step", "loss"}; the message says what to do."""


def _damage(values):
  """Why `values` (best.json parsed) is not {"step": int >= 0, "loss": number}, or None."""
  if not isinstance(values, dict):
    return f"a JSON {type(values).__name__}, not an object"
  step, loss = values.get("step"), values.get("loss")
  if not isinstance(step, int) or isinstance(step, bool) or step < 0:
    return f'"step": {step!r} is not a step'
  if not isinstance(loss, (int, float)) or isinstance(loss, bool) or math.isnan(loss):
    return f'"loss": {loss!r} is not a loss'
  return None


def read_best(workdir):
  """{"step": int, "loss": float} of the best checkpoint of a run, or None when there is none.

  Raises:
    DamagedBest: naming the file, when best.json does not parse or holds something else. A
      training refuses to go on (it would replace the best checkpoint without knowing its
      loss); the message says to restore the file or delete ckpt/best.
  """
  folder = best_dir(workdir)
  path = os.path.join(folder, BEST_FILENAME)
  if not os.path.exists(path):
    return None
  try:
    with open(path, "rb") as f:
      values = json.loads(f.read().decode("utf-8"))
    why = _damage(values)
  except (ValueError, OSError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
    why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
  if why:
    raise DamagedBest(
        f"{path} is damaged ({why}); it records the step and validation loss of the best "
        f"checkpoint beside it. Restore it from a copy, or delete the folder {folder} (the "
        "next evaluation of a training then starts a new best checkpoint; the other "
        "checkpoints are kept).")
  return values


def best_checkpoint(workdir):
  """The path prefix of the best checkpoint of a run, or None.

  A damaged best.json does not hide the checkpoint beside it: that one is returned, with a
  warning (`read_best` says what to do).
  """
  try:
    if not read_best(workdir):
      return None
  except DamagedBest as e:
    logging.warning("%s Using the checkpoint in that folder all the same.", e)
  found = checkpoints.candidates(best_dir(workdir))  # an index of another folder: not used
  return found[0] if found else None


class BestCheckpoint:
  """Tracks the lowest validation loss of a run, saves its checkpoint, and says when to stop.

  Args:
    checkpoint: the trainer's tf.train.Checkpoint.
    config: Config (early_stopping_patience, beta schedule).
    eval_every: int, steps between evaluations (tfvae.training.run.eval_interval).
    workdir: the run folder (None: nothing is saved).
    strategy: the tf.distribute.Strategy (only the chief writes to the workdir).
  """

  def __init__(self, checkpoint, config, eval_every, workdir, strategy):
    self.checkpoint = checkpoint
    self.patience = config.training.early_stopping_patience
    self.eval_every = eval_every
    self.warmup_end = warmup_end(config)
    self.workdir = workdir
    self.strategy = strategy
    best = read_best(workdir) if workdir else None
    self.best_step = best["step"] if best else None
    self.best_loss = best["loss"] if best else math.inf

  def evaluations_without_improvement(self, step):
    """Evaluations at steps in (max(best step, warm-up end), step] (int >= 0); 0 before any
    evaluation was recorded (also for a run resumed from before best checkpoints existed)."""
    if self.best_step is None:
      return 0
    since = max(self.best_step, self.warmup_end)
    return max(0, step // self.eval_every - since // self.eval_every)

  def should_stop(self, step):
    """True when --early_stopping_patience > 0 evaluations after the warm-up have not
    improved on the best validation loss."""
    return bool(self.patience) and self.evaluations_without_improvement(step) >= self.patience

  def update(self, step, loss):
    """Records the validation `loss` (nats) of the evaluation at `step`; saves the checkpoint
    to WORKDIR/ckpt/best when it is the lowest so far. Every worker must call it. Returns
    True when it improved."""
    if not loss < self.best_loss:  # also False for NaN
      return False
    self.best_step, self.best_loss = int(step), float(loss)
    if self.workdir:
      with distribute.write_dir(self.strategy, self.workdir) as root:
        folder = best_dir(root)
        checkpoints.recover_index(folder)  # the manager deletes what the index lists
        tf.train.CheckpointManager(self.checkpoint, folder, max_to_keep=1).save(
            checkpoint_number=step)
        # after the checkpoint: best.json never points ahead
        atomic.write_json(os.path.join(folder, BEST_FILENAME),
                          {"step": self.best_step, "loss": self.best_loss})
    return True


def restore_best(trainer, workdir, best, step, log=True):
  """Restores the best checkpoint into the trainer's model unless it is `step`'s; returns the
  step of the weights the model now holds."""
  best_path = best_checkpoint(workdir)
  if best_path and best.best_step != step:
    try:
      checkpoints.restore(tf.train.Checkpoint(model=trainer.model), [best_path])
      if log:
        logging.info("Restored the best checkpoint (step %d, validation loss %.3f) for the "
                     "final evaluation and the export.", best.best_step, best.best_loss)
      return best.best_step
    except checkpoints.CheckpointMismatch as e:  # a damaged best: the last weights instead
      logging.warning("%s: evaluating and exporting the weights of step %d instead.", e, step)
  return step
