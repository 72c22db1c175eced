"""Which checkpoint of a run restores (tfvae/training/checkpoints.py), for absolute and relative
run folders and for an index of binary garbage or of another folder, and the resume of
`tfvae.fit` with a relative workdir."""

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
  assert first.results["step"] == 20 and first.step == 20
  second = tfvae.fit(config(40), workdir)  # resumed at step 20, not refused or restarted
  assert second.results["step"] == 40
  assert checkpoints.candidates(os.path.join(workdir, "ckpt"))[0] == os.path.join(
      workdir, "ckpt", "ckpt-40")
  assert tfvae.load(workdir).step == 40


def test_an_index_of_binary_garbage_gives_the_checkpoints_on_disk_and_is_rebuilt(tmp_path):
  ckpt_dir = str(tmp_path / "ckpt")
  _save(ckpt_dir, [1.0], [20, 40])
  with open(os.path.join(ckpt_dir, checkpoints.INDEX_FILENAME), "wb") as f:
    f.write(b"\xff\xfe\x00\x9c garbage")  # not UTF-8
  on_disk = [os.path.join(ckpt_dir, "ckpt-40"), os.path.join(ckpt_dir, "ckpt-20")]
  assert checkpoints.candidates(ckpt_dir) == on_disk
  assert checkpoints.recover_index(ckpt_dir) == on_disk
  assert tf.train.get_checkpoint_state(ckpt_dir).model_checkpoint_path == on_disk[0]


def _index_of_another_folder(ckpt_dir, other):
  """Rewrites ckpt_dir's index as a run moved or copied from `other` has it: absolute paths."""
  tf.compat.v1.train.update_checkpoint_state(
      ckpt_dir, os.path.join(other, "ckpt-40"),
      all_model_checkpoint_paths=[os.path.join(other, f"ckpt-{s}") for s in (20, 40)])


@pytest.mark.parametrize("other_exists", [False, True])  # a run folder moved / copied
def test_an_index_listing_another_folder_gives_this_folders_checkpoints(tmp_path, other_exists):
  ckpt_dir, other = str(tmp_path / "copy" / "ckpt"), str(tmp_path / "original" / "ckpt")
  _save(ckpt_dir, [1.0], [20, 40])
  if other_exists:
    _save(other, [2.0], [20, 40])
  _index_of_another_folder(ckpt_dir, other)
  on_disk = [os.path.join(ckpt_dir, "ckpt-40"), os.path.join(ckpt_dir, "ckpt-20")]
  assert checkpoints.candidates(ckpt_dir) == on_disk
  restored = tf.Variable([0.0])
  assert checkpoints.restore(tf.train.Checkpoint(v=restored), on_disk)[0] == on_disk[0]
  assert restored.numpy()[0] == 1.0  # this run's weights, not the other folder's
  assert checkpoints.recover_index(ckpt_dir) == on_disk
  assert checkpoints.candidates(ckpt_dir) == on_disk  # the index is this folder's again
  # A manager such as the trainer's (max_to_keep=3) then sweeps this folder's checkpoints only.
  _save(ckpt_dir, [1.0], [60, 80, 100])
  assert checkpoints.candidates(ckpt_dir)[:3] == [os.path.join(ckpt_dir, f"ckpt-{s}")
                                                  for s in (100, 80, 60)]
  if other_exists:
    assert checkpoints.on_disk(other) == [os.path.join(other, "ckpt-40"),
                                          os.path.join(other, "ckpt-20")]


@pytest.mark.parametrize("damage", ["binary", "another folder"])
def test_an_unusable_index_without_checkpoints_on_disk_is_removed(tmp_path, damage):
  ckpt_dir = str(tmp_path / "ckpt")
  os.makedirs(ckpt_dir)
  index = os.path.join(ckpt_dir, checkpoints.INDEX_FILENAME)
  if damage == "binary":
    with open(index, "wb") as f:
      f.write(b"\xff\xfe\x00")
  else:
    _index_of_another_folder(ckpt_dir, str(tmp_path / "original" / "ckpt"))
  assert checkpoints.candidates(ckpt_dir) == []
  assert checkpoints.recover_index(ckpt_dir) == [] and not os.path.exists(index)
  _save(ckpt_dir, [1.0], [20])  # a manager starts afresh there
