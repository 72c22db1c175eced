"""Your own Keras networks in a VAE (tfvae/user_networks.py, tfvae/network_checks.py): the
one-line shape checks before anything is written, training, the stored networks, a custom
likelihood's term, an encoder that returns a distribution, two replicas, and a run loaded in a
fresh process."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfvae
from conftest import ROOT
from tfvae import config as config_lib
from tfvae import models
from tfvae import network_checks
from tfvae import user_networks
from tfvae.training import trainer as trainer_lib

tfd = tfp.distributions
LATENT = 3


@keras.saving.register_keras_serializable("tfvae_tests")
class StudentTDecoder(keras.Model):
  """z [B, D] -> Independent(StudentT(df, loc(z), scale), 1) over vectors [B, 64]; df and the
  scale are learned weights."""

  def __init__(self, features=64, **kwargs):
    super().__init__(**kwargs)
    self.features = features
    self.hidden = keras.layers.Dense(32, activation="relu")
    self.loc = keras.layers.Dense(features)

  def build(self, input_shape):
    self.hidden.build(input_shape)
    self.loc.build((None, 32))
    self.raw_df = self.add_weight(shape=(), initializer="zeros", name="raw_df")
    self.raw_scale = self.add_weight(shape=(self.features,), initializer="zeros",
                                     name="raw_scale")

  def call(self, z):
    return tfd.Independent(tfd.StudentT(df=2.0 + tf.nn.softplus(self.raw_df),
                                        loc=self.loc(self.hidden(z)),
                                        scale=tf.nn.softplus(self.raw_scale) + 1e-3), 1)

  def get_config(self):
    return {**super().get_config(), "features": self.features}


@keras.saving.register_keras_serializable("tfvae_tests")
class GaussianEncoder(keras.Model):
  """x [B, 8, 8, 1] -> MultivariateNormalDiag q(z|x) of its own."""

  def __init__(self, latent_dim=LATENT, **kwargs):
    super().__init__(**kwargs)
    self.latent_dim = latent_dim
    self.flatten = keras.layers.Flatten()
    self.params = keras.layers.Dense(2 * latent_dim)

  def call(self, x):
    loc, raw = tf.split(self.params(self.flatten(x)), 2, axis=-1)
    return tfd.MultivariateNormalDiag(loc, tf.nn.softplus(raw) + 1e-3)

  def get_config(self):
    return {**super().get_config(), "latent_dim": self.latent_dim}


def _encoder(features=16):
  return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                           keras.layers.Dense(features, activation="relu")])


def _decoder(shape=(8, 8, 1)):
  return keras.Sequential([keras.Input((LATENT,)), keras.layers.Dense(16, activation="relu"),
                           keras.layers.Dense(int(np.prod(shape))), keras.layers.Reshape(shape)])


def _config(**kwargs):
  values = dict(latent_dim=LATENT, hidden_sizes=(16,), train_steps=20, steps_per_loop=10,
                eval_every=0, eval_importance_samples=0)
  values.update(kwargs)
  return tfvae.Config(**values)


@pytest.mark.parametrize("parts,message", [
    (dict(encoder=keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()])), None),
    (dict(encoder=keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Dense(4)])),
     "encoder: for x [2, 8, 8, 1] expected features [2, F] or a tfd.Distribution q(z|x), got "
     "a Tensor [2, 8, 8, 4]."),
    (dict(encoder=GaussianEncoder(latent_dim=5)),
     "encoder: for x [2, 8, 8, 1] expected q(z|x) with batch [2] and event [3] (--latent_dim), "
     "got a MultivariateNormalDiag with batch [2] and event [5]."),
    (dict(decoder=_decoder((64,))),
     "decoder: for z [2, 3] and --likelihood=bernoulli expected parameters [2, 8, 8, 1], got a "
     "Tensor [2, 64]."),
    (dict(decoder=StudentTDecoder()),
     "decoder: for z [2, 3] expected p(x|z) with batch [2] and event [8, 8, 1] (the data's "
     "shape), got a Independent with batch [2] and event [64]."),
    (dict(encoder="not a network"), "encoder: expected a Keras 3 model or layer, got str."),
    (dict(decoder=keras.Sequential([keras.Input((LATENT,)), keras.layers.Lambda(
        lambda z: tf.zeros([tf.shape(z)[0], 8, 8, 1]))])),
     "decoder: Sequential cannot be stored with the run"),
], ids=["features_ok", "encoder_rank", "encoder_event", "decoder_params", "decoder_event",
        "not_keras", "lambda"])
def test_networks_that_do_not_fit_are_one_line_before_anything_is_written(tmp_path, parts,
                                                                            message):
  if message is None:
    network_checks.check(user_networks.Parts(**parts), _config().replace(image_shape=(8, 8, 1)))
    return
  with pytest.raises(user_networks.NetworkError) as raised:
    tfvae.fit(_config(), str(tmp_path / "run"), **parts)
  assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
  assert not (tmp_path / "run").exists()


def test_a_part_the_family_does_not_take_and_iaf_are_refused_in_one_line(tmp_path):
  with pytest.raises(user_networks.NetworkError, match=r"^prior: --model=ae takes no prior "
                     r"network \(it takes encoder, decoder, likelihood\)\.$"):
    tfvae.fit(_config(model="ae"), str(tmp_path / "a"), prior=keras.layers.Dense(1))
  with pytest.raises(user_networks.NetworkError, match="--posterior=iaf has no features"):
    tfvae.fit(_config(posterior="iaf"), str(tmp_path / "b"), encoder=GaussianEncoder())
  assert not os.listdir(tmp_path)


def _built(config, **parts):
  config = config.replace(**{"image_shape": [8, 8, 1]})
  return models.build(config, seed=0, parts=user_networks.Parts(**parts))


def test_an_encoder_that_returns_a_distribution_is_used_unchanged():
  template = GaussianEncoder()
  template(tf.zeros([1, 8, 8, 1]))  # built: its weights are the model's starting point
  model = _built(_config(), encoder=template)
  x = tf.random.stateless_uniform([5, 8, 8, 1], seed=[1, 2])
  q_z = model.posterior(x)
  expected = template(x)
  assert isinstance(q_z, tfd.MultivariateNormalDiag)
  np.testing.assert_allclose(q_z.mean(), expected.mean(), rtol=1e-6)
  np.testing.assert_allclose(q_z.stddev(), expected.stddev(), rtol=1e-6)
  assert model.encoder.head is None  # no head added
  assert model.encoder.body is not template  # a copy is trained, not the caller's object


def test_a_custom_likelihoods_term_equals_its_log_prob():
  config = _config(likelihood="normal")
  config = config.replace(**{"image_shape": [64]})
  template = StudentTDecoder()
  template(tf.zeros([1, LATENT]))
  model = models.build(config, seed=0, parts=user_networks.Parts(decoder=template))
  x = tf.random.stateless_normal([4, 64], seed=[3, 4])
  eps = tf.random.stateless_normal([6, 4, LATENT], seed=[5, 6])
  q_z = model.posterior(x)
  terms = model.log_weight_terms(x, q_z, eps)
  z = terms["z"]  # [6, 4, D]
  direct = tf.stack([template(z[i]).log_prob(x) for i in range(6)])  # the user's own log_prob
  np.testing.assert_allclose(terms["log_likelihood"], direct, rtol=1e-5)
  elbo = model.elbo(x, tf.constant([7, 8]))
  assert elbo["distortion"].shape == (4,) and np.all(np.isfinite(elbo["elbo"]))


def test_one_and_two_replicas_give_the_same_loss_with_user_networks():
  config = _config().replace(**{"image_shape": [8, 8, 1],
                                        "batch_size": 8})
  parts = user_networks.Parts(encoder=_encoder(), decoder=_decoder())
  batch = {"image": tf.random.stateless_uniform([8, 8, 8, 1], seed=[9, 9])}
  losses = []
  for devices in (["/cpu:0"], ["/cpu:0", "/cpu:1"]):
    strategy = tf.distribute.MirroredStrategy(devices)
    trainer = trainer_lib.Trainer(config, strategy, parts=parts)
    terms = trainer.model.losses(batch, tf.constant([1, 2]), tf.constant(0, tf.int64),
                                 training=False)
    losses.append(float(tf.reduce_mean(terms["loss"])))
    assert len(trainer.model.trainable_variables) == len(
        parts.encoder.trainable_variables) + 2 + len(parts.decoder.trainable_variables)
  assert losses[0] == pytest.approx(losses[1], rel=1e-6)


@pytest.mark.slow
def test_user_networks_train_are_stored_and_load_in_a_fresh_process(tmp_path):
  workdir = str(tmp_path / "run")
  encoder, decoder = _encoder(), _decoder()
  before = [w.numpy().copy() for w in encoder.weights]
  results = tfvae.fit(_config(train_steps=30), workdir, encoder=encoder, decoder=decoder).results
  assert results["step"] == 30 and np.isfinite(results["test"]["elbo"])
  for w, b in zip(encoder.weights, before):  # the caller's networks are templates
    np.testing.assert_array_equal(w.numpy(), b)
  stored = sorted(os.listdir(os.path.join(workdir, "networks")))
  assert stored == ["decoder.json", "encoder.json"]
  assert json.load(open(os.path.join(workdir, "networks", "encoder.json")))[
      "class_name"] == "Sequential"
  model = tfvae.load(workdir)
  trained = model.model.encoder.body.weights[0].numpy()
  assert not np.array_equal(trained, before[0])  # the copy trained
  # Resume with the networks given again, and without them (from the workdir alone).
  assert tfvae.fit(_config(train_steps=40), workdir, encoder=_encoder(),
                   decoder=_decoder()).results["step"] == 40
  assert tfvae.fit(_config(train_steps=50), workdir).results["step"] == 50
  with pytest.raises(user_networks.NetworkError, match="encoder: differs from the one stored"):
    tfvae.fit(_config(train_steps=60), workdir, encoder=_encoder(features=17))
  # A fresh process: load, evaluate and call the SavedModel without importing TFP.
  script = f"""
import sys, numpy as np, tensorflow as tf
loaded = tf.saved_model.load({os.path.join(workdir, 'export')!r})
x = tf.constant(np.zeros([2, 8, 8, 1], np.float32))
assert loaded.signatures["reconstruct"](x=x)["reconstruction"].shape == (2, 8, 8, 1)
assert "tensorflow_probability" not in sys.modules
import tfvae
m = tfvae.load({workdir!r})
print("STEP", m.step, "ELBO", float(np.mean(m.elbo(np.zeros([3, 8, 8, 1], np.float32)))))
"""
  proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "STEP 50 ELBO" in proc.stdout
