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

import tensorflow as tf

from tfvae import atomic
from tfvae.training import distribute

BEST_DIRNAME = "best"
BEST_FILENAME = "best.json"


def warmup_end(config):
  """The step from which beta keeps its final value: warmup_steps (linear), the end of the
  last cycle (cyclical), 0 (constant). Evaluations before it do not count towards patience."""
  if config.beta_schedule == "linear":
    return config.warmup_steps
  if config.beta_schedule == "cyclical":
    return 2 * config.warmup_steps * config.num_cycles
  return 0


def best_dir(workdir):
  return os.path.join(workdir, "ckpt", BEST_DIRNAME)


def read_best(workdir):
  """{"step": int, "loss": float} of the best checkpoint of a run, or None."""
  path = os.path.join(best_dir(workdir), BEST_FILENAME)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def best_checkpoint(workdir):
  """The path prefix of the best checkpoint of a run, or None."""
  return tf.train.latest_checkpoint(best_dir(workdir)) if read_best(workdir) else None


class BestCheckpoint:
  """Tracks the lowest validation loss of a run, saves its checkpoint, and says when to stop.

  Args:
    checkpoint: the trainer's tf.train.Checkpoint.
    config: Config (early_stopping_patience, eval_every or one epoch, beta schedule).
    eval_every: int, steps between evaluations.
    workdir: the run folder (None: nothing is saved).
    strategy: the tf.distribute.Strategy (only the chief writes to the workdir).
  """

  def __init__(self, checkpoint, config, eval_every, workdir, strategy):
    self.checkpoint = checkpoint
    self.patience = config.early_stopping_patience
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
        tf.train.CheckpointManager(self.checkpoint, folder, max_to_keep=1).save(
            checkpoint_number=step)
        # after the checkpoint: best.json never points ahead
        atomic.write_json(os.path.join(folder, BEST_FILENAME),
                          {"step": self.best_step, "loss": self.best_loss})
    return True
