"""Options a run ignores (tfvae/options.py): warned about, kept out of config.json, and truly
without effect on the models that ignore them."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_module, tiny_model
from tfvae import config as config_lib
from tfvae import models
from tfvae import options

# A value other than the default for every option that not every run reads, valid on its own.
_OTHER = {
    "posterior_scale": "clamped_log_variance", "posterior": "iaf", "num_flows": 3,
    "prior": "vampprior", "num_pseudo_inputs": 7, "num_mixture_components": 4,
    "training_objective": "iwae", "beta": 3.0, "beta_schedule": "cyclical", "warmup_steps": 5,
    "num_cycles": 2, "free_bits": 0.5, "num_samples": 2, "sparsity_weight": 0.5,
    "corruption": "gaussian", "corruption_level": 0.5, "contraction_weight": 0.7,
    "classifier_weight": 2.0, "prediction_weight": 3.0, "labeled_batch_size": 16,
    "conv_filters": (8,),
}
_LABELED = {"num_classes": 10, "labeled_examples": 100}


def test_every_option_that_not_every_run_reads_has_a_test_value():
  assert set(_OTHER) == options.FAMILY_OPTIONS
  assert set(options.READ_BY) == set(models.MODELS)
  assert set(config_lib.CHOICES["model"]) == set(models.MODELS)


def test_ignored_options_go_back_to_their_defaults_with_one_warning_each():
  config = config_lib.Config(model="ae", beta=4.0, free_bits=2.0, prior="vampprior",
                             num_pseudo_inputs=10, latent_dim=5)
  cleaned, messages = options.without_ignored(config)
  assert cleaned == config_lib.Config(model="ae", latent_dim=5)  # latent_dim is read: kept
  assert messages == [
      f"--{name} has no effect with --model=ae: ignored (the run is recorded without it)."
      for name in ("prior=vampprior", "num_pseudo_inputs=10", "beta=4.0", "free_bits=2.0")]
  assert options.without_ignored(config_lib.Config())[1] == []


def test_an_option_turned_off_by_another_is_ignored_and_one_turned_on_is_kept():
  config = config_lib.Config(training_objective="iwae", free_bits=1.0, num_pseudo_inputs=9,
                             warmup_steps=100, conv_filters=(8,))
  cleaned, messages = options.without_ignored(config)
  assert cleaned == config_lib.Config(training_objective="iwae")
  assert [m.split(" has no effect with ")[1].split(":")[0] for m in messages] == [
      "--architecture=mlp", "--prior=standard_normal", "--beta_schedule=constant",
      "--training_objective=iwae"]
  kept = config_lib.Config(prior="vampprior", num_pseudo_inputs=9, beta_schedule="linear",
                           warmup_steps=100, architecture="conv", conv_filters=(8,))
  assert options.without_ignored(kept) == (kept, [])


def test_checks_between_options_apply_only_to_the_options_a_run_reads():
  # free bits need the analytic KL, warm-up a length: an autoencoder reads neither.
  config_lib.Config(model="ae", free_bits=2.0, prior="vampprior", beta_schedule="linear")
  config_lib.Config(model="vae", training_objective="elbo", corruption_level=1.5)
  with pytest.raises(config_lib.ConfigError, match="--free_bits=2.0 needs"):
    config_lib.Config(model="vae", free_bits=2.0, prior="vampprior")
  with pytest.raises(config_lib.ConfigError, match="--warmup_steps >= 1"):
    config_lib.Config(model="vae", beta_schedule="linear")


def test_a_run_with_ignored_options_resumes_one_without_them_and_back():
  saved = config_lib.Config(model="sparse_ae", beta=4.0, image_shape=(8, 8, 1))  # an old config
  config_lib.check_resumable(saved, config_lib.Config(model="sparse_ae", image_shape=(8, 8, 1)))
  config_lib.check_resumable(options.without_ignored(saved)[0], saved)
  with pytest.raises(config_lib.ConfigError, match="--sparsity_weight"):
    config_lib.check_resumable(saved, config_lib.Config(model="sparse_ae", sparsity_weight=0.5))


def _loss(model, batch):
  terms = model.losses(batch, tf.constant([3, 4]), tf.constant(2, tf.int64), training=True)
  return terms["loss"].numpy()


@pytest.mark.parametrize("family", sorted(models.MODELS))
@pytest.mark.slow
def test_an_option_a_family_ignores_changes_nothing_it_computes(family):
  """Built with each ignored option at another value, the model has the same variables and,
  with the same weights, the same training loss on the same batch: the table in
  tfvae/options.py is what the models read."""
  base = dict(model=family, **(_LABELED if family in config_lib.SEMI_SUPERVISED else {}))
  images = (np.random.default_rng(0).random([6, 8, 8, 1]) > 0.5).astype(np.float32)
  batch = {"image": tf.constant(images), "label": tf.constant([0, 1, -1, 3, -1, 5], tf.int64),
           "index": tf.range(6)}
  reference = tiny_model(**base)
  expected = _loss(reference, batch)
  ignored = [name for name in sorted(options.FAMILY_OPTIONS) if not options.reads(
      config_lib.Config(**base), name) and name != "labeled_batch_size"]  # (read by the data)
  assert ignored
  for name in ignored:
    model = tiny_model(**base, **{name: _OTHER[name]})
    assert [v.shape for v in model.variables] == [v.shape for v in reference.variables], name
    for mine, theirs in zip(model.variables, reference.variables):
      mine.assign(theirs)
    np.testing.assert_array_equal(_loss(model, batch), expected, err_msg=name)


def test_a_read_option_does_change_the_loss():
  """The check above can fail: an option the VAE reads changes its loss."""
  images = (np.random.default_rng(0).random([6, 8, 8, 1]) > 0.5).astype(np.float32)
  batch = {"image": tf.constant(images), "index": tf.range(6)}
  reference, model = tiny_model(model="vae"), tiny_model(model="vae", beta=3.0)
  for mine, theirs in zip(model.variables, reference.variables):
    mine.assign(theirs)
  assert not np.allclose(_loss(model, batch), _loss(reference, batch))


@pytest.mark.slow
def test_train_warns_records_the_run_without_them_and_resumes_without_them(tmp_path):
  workdir = str(tmp_path / "run")
  common = ["--flagfile=configs/quickstart.cfg", "--model=ae", "--train_steps=40",
            "--steps_per_loop=20", "--eval_every=40", "--checkpoint_every=40",
            "--hidden_sizes=32", f"--workdir={workdir}"]
  first = run_module("tfvae.train", *common, "--beta=4", "--free_bits=2")
  for flag in ("--beta=4.0", "--free_bits=2.0"):
    assert f"{flag} has no effect with --model=ae: ignored" in first.stderr
  with open(os.path.join(workdir, "config.json")) as f:
    saved = json.load(f)
  assert (saved["beta"], saved["free_bits"], saved["model"]) == (1.0, 0.0, "ae")
  again = run_module("tfvae.train", *common)  # without them: the same run, finished
  assert "Nothing left to train" in again.stderr, again.stderr[-2000:]
  assert "has no effect" not in again.stderr
