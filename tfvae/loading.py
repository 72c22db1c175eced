"""Loading a trained run for inference: its model rebuilt from the workdir alone.

`restore_model` rebuilds the model of WORKDIR/config.json (with the user networks stored in
WORKDIR/networks; the modules of the factories config.json names are imported, so that the
classes they register deserialize) and restores one of its checkpoints. It is what
`tfvae.load`, evaluation, figures and export use, and it imports no part of the trainer
(tfvae/training/trainer.py, run.py): loading a model for inference needs only the checkpoint
readers.
"""

import os

import tensorflow as tf

from tfvae import config_io
from tfvae import models
from tfvae import network_factories
from tfvae import user_networks
from tfvae.training import checkpoints
from tfvae.training import early_stopping


def restore_model(workdir, strategy=None, checkpoint="best", parts=None):
  """Rebuilds the model of a run from WORKDIR/config.json, its stored user networks
  (WORKDIR/networks, tfvae/user_networks.py) and one of its checkpoints.

  Args:
    workdir: a run folder.
    strategy: optional tf.distribute.Strategy to build the model under.
    checkpoint: "best" (WORKDIR/ckpt/best, the lowest validation loss, when the run has one;
      else the latest) or "latest".
    parts: optional user_networks.Parts to use instead of the stored ones (the same networks,
      e.g. when their classes cannot be imported here).

  Returns:
    (config, model, step): the run's Config, the model with restored weights, the int step
    of those weights.

  Raises:
    FileNotFoundError: if the workdir has no config.json or no checkpoint.
    checkpoints.CheckpointMismatch: if no checkpoint restores (each damaged, or another model).
    user_networks.NetworkError: if a stored network does not load, or `parts` differ from them,
      or the module of a factory the config names (--encoder/--decoder) does not import.
  """
  config = config_io.load(workdir)
  parts = network_factories.from_config(config, parts, workdir)  # imports --encoder/--decoder's
  parts = user_networks.reconcile(workdir, parts)
  with (strategy or tf.distribute.get_strategy()).scope():
    model = models.build(config, parts=parts)
  step = tf.Variable(0, dtype=tf.int64)
  paths = checkpoints.candidates(os.path.join(workdir, "ckpt"))
  best = early_stopping.best_checkpoint(workdir) if checkpoint == "best" else None
  if best:  # a damaged best checkpoint falls back to the latest ones, with a warning
    paths = [best, *paths]
  if not paths:
    raise FileNotFoundError(f"No checkpoint in {os.path.join(workdir, 'ckpt')}: train first.")
  checkpoints.restore(tf.train.Checkpoint(model=model, step=step), paths)
  return config, model, int(step.numpy())
