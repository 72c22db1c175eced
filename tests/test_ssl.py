"""Semi-supervised learning: the balanced labeled subset, the mixed batches, M1, M2 and PC-VAE."""

import json
import os

import numpy as np
import pytest

from conftest import run_module
from tfvae import config as config_lib
from tfvae import data as data_lib
from tfvae import ssl


@pytest.fixture(scope="module")
def digits():
  return data_lib.load(config_lib.Config())


def test_balanced_subset_has_n_over_k_per_class_and_depends_only_on_the_seed(digits):
  config = config_lib.Config(num_labels="50", label_seed=3)
  chosen = data_lib.labeled_indices(digits, config)
  assert len(chosen) == 50 and len(set(chosen.tolist())) == 50
  np.testing.assert_array_equal(np.bincount(digits.train.labels[chosen], minlength=10), [5] * 10)
  np.testing.assert_array_equal(chosen, data_lib.labeled_indices(digits, config))
  other = data_lib.labeled_indices(digits, config_lib.Config(num_labels="50", label_seed=4))
  assert set(chosen.tolist()) != set(other.tolist())


def test_labeled_subset_is_disjoint_from_the_test_set(digits):
  chosen = data_lib.labeled_indices(digits, config_lib.Config(num_labels="100"))
  train_images = digits.train.images[chosen].reshape(100, -1)
  test_images = {row.tobytes() for row in digits.test.images.reshape(len(digits.test), -1)}
  # Chosen from the train split only (digits has a few duplicate images across splits: compare
  # positions in the original data instead of pixels where they collide).
  assert chosen.max() < len(digits.train)
  assert sum(row.tobytes() in test_images for row in train_images) <= 2


def test_num_labels_errors_name_the_flag(digits):
  with pytest.raises(data_lib.DataError, match="--num_labels=55"):
    data_lib.labeled_indices(digits, config_lib.Config(num_labels="55"))
  with pytest.raises(config_lib.ConfigError, match="--num_labels"):
    config_lib.Config(num_labels="some")
  with pytest.raises(config_lib.ConfigError, match="--labeled_batch_size"):
    config_lib.Config(model="m2", num_labels="50", labeled_batch_size=64, batch_size=64)
  assert config_lib.Config(num_labels="all").labels_known is None


def test_mixed_batches_are_labeled_rows_then_unlabeled_rows_and_resume_identically(digits):
  config = config_lib.Config(model="pc_vae", num_labels="50", labeled_batch_size=8,
                             batch_size=32)
  chosen = set(data_lib.labeled_indices(digits, config).tolist())
  chosen_images = {digits.train.images[i].tobytes() for i in chosen}
  batches = list(data_lib.train_dataset(digits, config).take(5))
  for b in batches:
    labels = b["label"].numpy()
    assert b["image"].shape[0] == 32
    assert (labels[:8] >= 0).all() and (labels[8:] == -1).all()
  resumed = list(data_lib.train_dataset(digits, config, start_step=3).take(2))
  for a, b in zip(batches[3:], resumed):
    np.testing.assert_array_equal(a["label"], b["label"])
  # Labeled rows come from the labeled subset (static binarization keeps the pixels).
  static = config_lib.Config(model="pc_vae", num_labels="50", labeled_batch_size=8,
                             batch_size=32, binarization="none")
  none_data = data_lib.load(static)
  batch = next(iter(data_lib.train_dataset(none_data, static)))
  for row in np.round(batch["image"].numpy()[:8] * 16).astype(np.uint8):
    assert row.tobytes() in chosen_images
  # Models that are not semi-supervised get the plain batches with every label.
  plain = next(iter(data_lib.train_dataset(digits, config_lib.Config(num_labels="50",
                                                                     batch_size=32))))
  assert (plain["label"].numpy() >= 0).all()


def test_m1_library_and_entry_point(tmp_path):
  workdir = str(tmp_path)
  run_module("tfvae.train", "--flagfile=configs/quickstart.cfg", "--train_steps=300",
             "--eval_every=300", "--checkpoint_every=300", "--steps_per_loop=100",
             "--eval_importance_samples=0", f"--workdir={workdir}")
  proc = run_module("tfvae.evaluate", f"--workdir={workdir}", "--m1_labels=50",
                    "--label_seed=1")
  metrics = json.loads(proc.stdout[proc.stdout.index("{"):])
  assert metrics["num_labels"] == 50 and metrics["label_seed"] == 1
  assert 0.4 < metrics["accuracy"] <= 1.0  # chance is 0.1
  with open(os.path.join(workdir, "eval.json")) as f:
    assert json.load(f)["m1"]["accuracy"] == metrics["accuracy"]


def test_logistic_regression_accuracy_on_separable_data():
  rng = np.random.default_rng(0)
  x = np.concatenate([rng.normal(-3, 1, [50, 2]), rng.normal(3, 1, [50, 2])])
  y = np.repeat([0, 1], 50)
  assert ssl.logistic_regression_accuracy(x, y, x, y) > 0.95
