"""User networks in the conditional VAE (tfvae/models/cvae.py `CVAEConfig.accepts`): the
encoder's features joined with c, the decoder over [z, c], the prior p(z|c) (a distribution or
its parameters, priors.UserConditionalPrior), the one-line refusals, and a run on digits that
trains them, stores them, reloads in a fresh process and exports."""

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
from tfvae import models
from tfvae import network_checks
from tfvae import priors
from tfvae import serving
from tfvae import user_networks

tfd = tfp.distributions
LATENT, CLASSES, SHAPE = 3, 10, (8, 8, 1)


def _config(**kwargs):
  values = dict(model="cvae", latent_dim=LATENT, hidden_sizes=(16,), train_steps=30,
                steps_per_loop=10, eval_every=0, eval_importance_samples=0)
  values.update(kwargs)
  return tfvae.Config(**values)


def _encoder():
  return keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                           keras.layers.Dense(16, activation="relu")], name="my_encoder")


def _decoder(width=LATENT + CLASSES):
  return keras.Sequential([keras.Input((width,)), keras.layers.Dense(16, activation="relu"),
                           keras.layers.Dense(64), keras.layers.Reshape(SHAPE)],
                          name="my_decoder")


def _prior(outputs=2 * LATENT):
  """c [B, 10] -> (loc, raw scale) [B, 2 * LATENT]."""
  return keras.Sequential([keras.Input((CLASSES,)), keras.layers.Dense(outputs)],
                          name="my_prior")


@keras.saving.register_keras_serializable("tfvae_cvae_tests")
class GaussianEncoder(keras.Model):
  """x -> q(z|x) of its own (the cvae refuses it: q(z|x, c) needs c)."""

  def call(self, x):
    x = keras.layers.Flatten()(x)[:, :LATENT]
    return tfd.MultivariateNormalDiag(x, tf.ones_like(x))


@keras.saving.register_keras_serializable("tfvae_cvae_tests")
class LogisticPrior(keras.layers.Layer):
  """c [B, C] -> p(z|c) = Independent(Logistic(c W, 1)), batch [B], event [LATENT]: a
  distribution whose KL against q(z|x, c) TFP does not have in closed form."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.loc = keras.layers.Dense(LATENT, use_bias=False)

  def call(self, c):
    return tfd.Independent(tfd.Logistic(self.loc(c), 1.0), 1)


@pytest.mark.parametrize("parts,kwargs,message", [
    (dict(decoder=_decoder(LATENT)), {},
     "decoder: expected input [z, c] [B, 13] (z [3] and c [10] joined on the last axis), got "
     "a network whose input is [None, 3]."),
    (dict(encoder=GaussianEncoder()), {},
     "encoder: it returns a distribution, so --model=cvae joins the features with the "
     "condition c for q(z|x, c): return features [B, F] instead."),
    (dict(prior=_prior()), dict(conditional_prior="standard"),
     "prior: --conditional_prior=standard fixes p(z|c) = N(0, I) whatever c: give "
     "--conditional_prior=learned with a prior network."),
    (dict(prior=_prior(outputs=LATENT)), {},
     "prior: for c [2, 10] expected p(z|c), a tfd.Distribution with batch [2] and event [3] "
     "(--latent_dim), or its parameters (loc, raw scale) [2, 6], got a Tensor [2, 3]."),
    (dict(prior=keras.Sequential([keras.Input((LATENT,)), keras.layers.Dense(6)])), {},
     "prior: expected input c [B, 10] (the condition's width C), got a network whose input "
     "is [None, 3]."),
    (dict(classifier=keras.Sequential([keras.Input((LATENT,)), keras.layers.Dense(10)])), {},
     "classifier: --model=cvae takes no classifier network (it takes encoder, decoder, "
     "likelihood, prior)."),
], ids=["decoder_width", "distribution_encoder", "prior_with_standard", "prior_params",
        "prior_input", "classifier"])
def test_networks_that_do_not_fit_the_cvae_are_one_line_before_anything_is_written(
    tmp_path, parts, kwargs, message):
  with pytest.raises(user_networks.NetworkError) as raised:
    tfvae.fit(_config(**kwargs), str(tmp_path / "run"), **parts)
  assert str(raised.value) == message
  assert not (tmp_path / "run").exists()


def _built(config=None, **parts):
  config = (config or _config()).replace(image_shape=SHAPE, num_classes=CLASSES)
  parts = user_networks.Parts(**parts)
  network_checks.check(parts, config)
  return models.build(config, seed=0, parts=parts)


def test_the_decoder_reads_z_and_c_and_the_encoder_features_are_joined_with_c():
  encoder, decoder, prior = _encoder(), _decoder(), _prior()
  model = _built(encoder=encoder, decoder=decoder, prior=prior)
  z = tf.random.stateless_normal([5, LATENT], seed=[1, 2])
  c0, c1 = tf.one_hot([0] * 5, CLASSES), tf.one_hot([7] * 5, CLASSES)
  for c in (c0, c1):  # Bernoulli means of the user decoder's logits at [z, c]; its weights
    expected = tf.sigmoid(decoder(tf.concat([z, c], -1)))  # are the template's (built)
    np.testing.assert_allclose(model.decode(z, c).mean(), expected, rtol=1e-5, atol=1e-6)
  assert not np.allclose(model.decode(z, c0).mean(), model.decode(z, c1).mean())
  x = tf.cast(tf.random.stateless_uniform([5, *SHAPE], seed=[3, 4]) > 0.5, tf.float32)
  features = encoder(x)
  np.testing.assert_allclose(model.encoder.features(x), features, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(model.encode(x, c1).mean(),
                             model.encoder.posterior(features, c1).mean(), rtol=1e-5)
  assert not np.allclose(model.encode(x, c0).mean(), model.encode(x, c1).mean())
  # p(z|c) from the prior's (loc, raw scale): loc and softplus(raw) (+ the scale's floor).
  loc, raw = tf.split(prior(c1), 2, -1)
  p_z = model.conditional_prior(c1)
  np.testing.assert_allclose(p_z.mean(), loc, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(p_z.stddev(), tf.nn.softplus(raw), rtol=1e-3, atol=1e-4)
  names = {id(v) for v in model.trainable_variables}  # the copies train, in the model's list
  for network in (model.encoder.body, model.decoder.net, model.prior_network.layer):
    assert network.trainable_variables and all(id(v) in names
                                               for v in network.trainable_variables)
  assert model.decoder.net is not decoder


def test_a_prior_without_a_closed_form_kl_gets_the_monte_carlo_rate():
  model = _built(_config(num_samples=4000), prior=LogisticPrior())
  assert not model.has_analytic_rate
  x = tf.cast(tf.random.stateless_uniform([4, *SHAPE], seed=[5, 6]) > 0.5, tf.float32)
  c = tf.one_hot([0, 3, 5, 9], CLASSES)
  terms = model.elbo(x, tf.constant([7, 8]), c)
  # KL(q || p) = E_q[log q(z) - log p(z)], estimated independently with 200000 draws.
  q_z, p_z = model.encode(x, c), model.conditional_prior(c)
  z = q_z.sample(200000, seed=[9, 10])
  expected = tf.reduce_mean(q_z.log_prob(z) - p_z.log_prob(z), 0)
  np.testing.assert_allclose(terms["rate"], expected, atol=0.08)
  assert model.given(c).rate_per_dimension(q_z, None) is None  # no per-dimension marginals


def _script(workdir):
  return f"""
import json, sys
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits
import tfvae
m = tfvae.load({workdir!r})
digits = load_digits()
x = (digits.images[:50, :, :, None] / 16.0 > 0.5).astype(np.float32)
saved = tf.saved_model.load({os.path.join(workdir, "export")!r})
y = tf.constant(digits.target[:50], tf.int64)
print(json.dumps({{"elbo": m.elbo(x, label=digits.target[:50]).tolist(),
                  "exported": saved.signatures["elbo"](x=tf.constant(x), y=y)["elbo"]
                              .numpy().tolist()}}))
"""


@pytest.mark.slow
def test_user_networks_train_are_stored_reload_in_a_fresh_process_and_export(tmp_path):
  from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
  workdir = str(tmp_path / "run")
  parts = dict(encoder=_encoder(), decoder=_decoder(), prior=_prior())
  before = {name: network.weights[0].numpy().copy() for name, network in parts.items()}
  trained = tfvae.fit(_config(), workdir, **parts)
  assert trained.results["step"] == 30 and np.isfinite(trained.results["test"]["elbo"])
  assert sorted(os.listdir(os.path.join(workdir, "networks"))) == [
      "decoder.json", "encoder.json", "prior.json"]
  model = trained.model
  for name, network in {"encoder": model.encoder.body, "decoder": model.decoder.net,
                        "prior": model.prior_network.layer}.items():
    assert network.name == f"my_{name}"  # the copies trained; the templates did not change
    assert not np.allclose(network.weights[0].numpy(), before[name]), name
    np.testing.assert_array_equal(parts[name].weights[0].numpy(), before[name])
  digits = load_digits()
  x = (digits.images[:50, :, :, None] / 16.0 > 0.5).astype(np.float32)
  labels = digits.target[:50]
  here = trained.elbo(x, label=labels)
  assert not np.allclose(here, trained.elbo(x, label=(labels + 1) % CLASSES))
  with pytest.raises(user_networks.NetworkError, match="^prior: differs from the one stored"):
    tfvae.load(workdir, prior=_prior(outputs=2 * LATENT + 2))
  proc = subprocess.run([sys.executable, "-c", _script(workdir)], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  there = json.loads(proc.stdout.strip().splitlines()[-1])
  np.testing.assert_allclose(there["elbo"], here, rtol=1e-5, atol=1e-4)
  seed = tf.constant(serving._ELBO_SEED)  # pylint: disable=protected-access
  exported = model.elbo(tf.constant(x), seed, tf.one_hot(labels, CLASSES))
  np.testing.assert_allclose(there["exported"], exported["elbo"], rtol=1e-5, atol=1e-4)


@pytest.mark.slow
def test_factories_named_by_the_config_train_and_reload(tmp_path):
  workdir = str(tmp_path / "run")
  config = _config(encoder="network_factories:encoder",
                   decoder="network_factories:any_width_decoder", train_steps=10)
  trained = tfvae.fit(config, workdir)
  assert trained.model.decoder.net.name == "factory_decoder"
  assert trained.model.decoder.net.inputs[0].shape[-1] == LATENT + CLASSES  # [z, c]
  assert isinstance(trained.model.prior_network, priors.ConditionalPriorNetwork)  # tfvae's own
  x = np.random.default_rng(0).integers(0, 2, [6, *SHAPE]).astype(np.float32)
  labels = np.arange(6) % CLASSES
  np.testing.assert_allclose(tfvae.load(workdir).elbo(x, label=labels),
                             trained.elbo(x, label=labels), rtol=1e-5, atol=1e-4)


def test_user_networks_on_real_conditions_are_checked_and_called_with_their_width():
  """A cvae on covariates (CovariateCVAE, C = config.data.condition_dim = 2, no classes): the
  decoder's input is [z, c] of width latent_dim + 2, the prior reads c [B, 2]."""
  config = tfvae.Config(model="cvae", latent_dim=LATENT, hidden_sizes=(16,), image_shape=SHAPE,
                        condition_dim=2, num_classes=0)
  covariate_prior = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2 * LATENT)],
                                     name="my_prior")
  parts = user_networks.Parts(encoder=_encoder(), decoder=_decoder(LATENT + 2),
                              prior=covariate_prior)
  network_checks.check(parts, config)
  with pytest.raises(user_networks.NetworkError, match=r"c \[2\]"):  # a class-width decoder
    network_checks.check(user_networks.Parts(decoder=_decoder()), config)
  model = models.build(config, seed=0, parts=parts)
  assert type(model).__name__ == "CovariateCVAE"
  rng = np.random.default_rng(0)
  x = tf.constant(rng.uniform(size=[4, *SHAPE]) > 0.5, tf.float32)
  c = tf.constant(rng.normal(size=[4, 2]), tf.float32)
  seed = tf.constant([1, 2])
  elbo = model.elbo(x, seed, c)["elbo"]
  assert np.all(np.isfinite(elbo))
  assert not np.allclose(model.elbo(x, seed, c + 1.0)["elbo"], elbo)
  z = tf.zeros([4, LATENT])
  np.testing.assert_allclose(model.decode(z, c).distribution.logits,
                             model.decoder.net(tf.concat([z, c], -1)), rtol=1e-6)
