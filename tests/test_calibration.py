"""The calibrated `normal` likelihood (issue 33 item 4): the train loss uses the batch's optimal
sigma (the sigma-VAE, tests/test_networks.py), and the sigma a model is evaluated, checkpointed
and exported with is the closed-form optimum on held-out data (Evaluator.calibrate)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import config as config_lib
from tfvae import data as data_lib
from tfvae import noise
from tfvae import objectives
from tfvae.evaluation import evaluator as evaluator_lib
from tfvae.training import early_stopping
from tfvae.training import trainer as trainer_lib

GRAY = dict(likelihood="normal", binarization="none", eval_importance_samples=0)


def _sample_mse(model, images, max_value):
  """The mean squared error per pixel of x to the decoder mean at the posterior samples the
  Evaluator draws (EVAL_SEED, each example's noise from its index), computed directly."""
  x = tf.constant(images / max_value, tf.float32)
  eps = noise.replica_normal_noise(model.config.model.num_samples, len(images),
                                   model.config.model.latent_dim,
                                   tf.constant(evaluator_lib.EVAL_SEED, tf.int32),
                                   tf.range(len(images), dtype=tf.int64))
  z, _ = objectives.reparameterize(model.encoder(x), eps)  # [L, N, D]
  return float(np.mean((x.numpy() - model.decoder(z).mean().numpy()) ** 2))


def test_calibrate_sets_the_held_out_optimum_and_changes_no_trained_weight():
  config = config_lib.Config(dataset="digits", hidden_sizes=(32,), latent_dim=4, batch_size=64,
                             num_samples=2, image_shape=(8, 8, 1), **GRAY)
  data = data_lib.load(config)
  trainer = trainer_lib.Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"))
  trainer.train(trainer.train_iterator(data), 30)
  decoder = trainer.model.decoder
  trained = [v.numpy().copy() for v in trainer.model.trainable_variables
             if v.path != decoder.raw_scale.path]
  validation = data_lib.eval_dataset(data, "validation", 100)  # several batches
  variance = trainer.calibrate(validation)
  metrics = trainer.evaluate(validation)
  expected = _sample_mse(trainer.model, data.validation.images, data.max_value)
  np.testing.assert_allclose(variance, expected, rtol=1e-4)
  np.testing.assert_allclose(float(decoder.scale()) ** 2, expected, rtol=1e-4)
  np.testing.assert_allclose(metrics["mean_squared_error"], expected, rtol=1e-4)
  for a, b in zip(trained, [v.numpy() for v in trainer.model.trainable_variables
                            if v.path != decoder.raw_scale.path]):
    np.testing.assert_array_equal(a, b)
  sigma = float(decoder.scale())
  for factor in (0.9, 1.1):  # the evaluated ELBO is highest at the calibrated sigma
    decoder.set_scale((factor * sigma) ** 2)
    assert trainer.evaluate(validation)["elbo"] < metrics["elbo"]


@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
  """A run that overfits: 64 train digits, 400 steps of a wide decoder; validation every 100."""
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  images = datasets.load_digits().images.astype(np.uint8)
  source = tfvae.data.from_arrays(images[:64], x_validation=images[64:464],
                                  x_test=images[464:864], max_value=16)
  workdir = str(tmp_path_factory.mktemp("calibration") / "run")
  config = tfvae.Config(hidden_sizes=(256,), latent_dim=8, batch_size=32, train_steps=400,
                        eval_every=100, steps_per_loop=100, strategy="one_device", **GRAY)
  return tfvae.fit(config, workdir, data=source), source, workdir


def test_a_run_evaluates_checkpoints_and_exports_the_validation_sigma(overfit):
  model, source, workdir = overfit
  data = model.data(source)
  decoder = model.model.decoder
  sigma = float(decoder.scale())
  # The validation optimum of the weights evaluated (the best checkpoint's).
  np.testing.assert_allclose(sigma**2, _sample_mse(model.model, data.validation.images, 16),
                             rtol=1e-4)
  np.testing.assert_allclose(sigma**2, model.results["validation"]["mean_squared_error"],
                             rtol=1e-5)
  # The best checkpoint carries it, and so do tfvae.load and the SavedModel.
  best = tfvae.load(workdir)
  assert best.step == json.load(open(os.path.join(
      early_stopping.best_dir(workdir), early_stopping.BEST_FILENAME)))["step"]
  assert float(best.model.decoder.scale()) == pytest.approx(sigma, rel=1e-6)
  exported = tf.saved_model.load(os.path.join(workdir, "export"))
  scale = exported.signatures["decode"](z=tf.zeros([2, 8]))["scale"].numpy()
  np.testing.assert_allclose(scale, sigma, rtol=1e-6)
  # A resume restores the latest checkpoint's sigma: the validation optimum of its weights.
  trainer = trainer_lib.Trainer(model.config, tf.distribute.OneDeviceStrategy("/cpu:0"),
                                workdir)
  assert trainer.restore() == 400
  restored = float(trainer.model.decoder.scale())
  trainer.calibrate(data_lib.eval_dataset(data, "validation", 1000))
  assert float(trainer.model.decoder.scale()) == pytest.approx(restored, rel=1e-5)


def test_the_held_out_sigma_beats_the_train_fitted_one_on_test_when_the_decoder_overfits(
    overfit):
  """The failure of a sigma fitted on the train batches (the sigma branch): the decoder
  overfits 64 examples, the train error falls below the held-out one, and a sigma fitted to it
  is too small for new data."""
  model, source, _ = overfit
  data = model.data(source)
  decoder = model.model.decoder
  held_out = float(decoder.scale()) ** 2
  train = _sample_mse(model.model, data.train.images, 16)
  assert held_out > 1.5 * train, (held_out, train)
  elbo = model.evaluate(source, split="test")["elbo"]
  decoder.set_scale(train)
  try:
    train_fitted = model.evaluate(source, split="test")["elbo"]
  finally:
    decoder.set_scale(held_out)
  assert elbo > train_fitted + 5, (elbo, train_fitted)
