"""Which checkpoint of a run restores (tfvae/training/checkpoints.py), for absolute and relative
run folders, and the resume of `tfvae.fit` with a relative workdir."""

import os

import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae.training import checkpoints


def _save(ckpt_dir, value, steps):
  """Checkpoints of one variable holding `value`, at each of `steps`, through the manager the
  trainer uses; returns the variable."""
  variable = tf.Variable(value)
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=variable), ckpt_dir, max_to_keep=3)
  for step in steps:
    manager.save(checkpoint_number=step)
  return variable


def test_a_relative_folder_gives_the_checkpoints_on_disk_newest_first(workdir):
  ckpt_dir = os.path.join(workdir, "ckpt")
  _save(ckpt_dir, [1.0, 2.0], [20, 40, 60])
  paths = checkpoints.candidates(ckpt_dir)
  assert paths == [os.path.join(ckpt_dir, f"ckpt-{s}") for s in (60, 40, 20)]
  assert all(os.path.exists(p + ".index") for p in paths)
  restored = tf.Variable([0.0, 0.0])
  path, skipped = checkpoints.restore(tf.train.Checkpoint(v=restored), paths)
  assert (path, skipped) == (paths[0], [])
  np.testing.assert_array_equal(restored.numpy(), [1.0, 2.0])


def test_checkpoints_that_do_not_fit_are_kept_and_overwrite_is_never_advised(workdir):
  ckpt_dir = os.path.join(workdir, "ckpt")
  _save(ckpt_dir, [1.0, 2.0], [20])
  other = tf.train.Checkpoint(v=tf.Variable([0.0, 0.0, 0.0]))  # another model
  with pytest.raises(checkpoints.CheckpointMismatch) as raised:
    checkpoints.restore(other, checkpoints.candidates(ckpt_dir))
  message = str(raised.value)
  assert message.startswith(f"No checkpoint in {ckpt_dir} restores into this model: ckpt-20: ")
  assert "--overwrite" not in message and "The checkpoints are kept" in message
  assert os.path.exists(os.path.join(ckpt_dir, "ckpt-20.index"))


@pytest.mark.slow
def test_fit_resumes_a_relative_workdir_and_load_reads_it(workdir):
  def config(steps):
    return tfvae.Config(latent_dim=2, hidden_sizes=(16,), train_steps=steps, steps_per_loop=10,
                        checkpoint_every=10, eval_every=0, eval_importance_samples=0)
  first = tfvae.fit(config(20), workdir)
  assert first["step"] == 20
  second = tfvae.fit(config(40), workdir)  # resumed at step 20, not refused or restarted
  assert second["step"] == 40
  assert checkpoints.candidates(os.path.join(workdir, "ckpt"))[0] == os.path.join(
      workdir, "ckpt", "ckpt-40")
  assert tfvae.load(workdir).step == 40
