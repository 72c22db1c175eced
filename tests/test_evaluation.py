"""Evaluation against closed forms: a linear-Gaussian model has an exact marginal likelihood."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import config as config_lib
from tfvae import data as data_lib
from tfvae.evaluation import evaluator as evaluator_lib
from tfvae import networks
from tfvae import objectives
from tfvae.training import trainer as trainer_lib

tfd = tfp.distributions
SEED = tf.constant([3, 7], tf.int32)


class LinearGaussian:
  """p(z) = N(0, I_D), p(x|z) = N(Wz + b, sigma^2 I_d); W has orthogonal columns, so the exact
  posterior N(m, S) is diagonal: S = 1 / (1 + s^2 / sigma^2), m = S W^T (x - b) / sigma^2.
  The exact marginal is p(x) = N(b, W W^T + sigma^2 I)."""

  def __init__(self, shift=0.0, widen=1.0, latent_dim=2, data_dim=6, sigma=0.5):
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=[data_dim, latent_dim]))
    self.s = np.array([2.0, 0.7])[:latent_dim]
    self.w = (q * self.s).astype(np.float32)
    self.b = rng.normal(size=[data_dim]).astype(np.float32)
    self.sigma, self.latent_dim, self.shift, self.widen = sigma, latent_dim, shift, widen

  def prior(self):
    return networks.prior(self.latent_dim)

  def decoder(self, z):
    return tfd.Independent(tfd.Normal(tf.linalg.matvec(self.w, z) + self.b, self.sigma), 1)

  def encoder(self, x):
    post_var = 1.0 / (1.0 + self.s**2 / self.sigma**2)
    m = post_var * tf.linalg.matvec(self.w, x - self.b, transpose_a=True) / self.sigma**2
    return tfd.MultivariateNormalDiag(m + self.shift,
                                      np.sqrt(post_var).astype(np.float32) * self.widen)

  # The part of the model interface (tfvae/models/interface.py) the bound uses.
  @property
  def noise_dim(self):
    return self.latent_dim

  def posterior(self, x):
    return self.encoder(x)

  def log_weight_terms(self, x, q_z, eps, training=False):
    del training
    z, log_q = objectives.reparameterize(q_z, eps)
    return {"z": z, "log_likelihood": self.decoder(z).log_prob(x),
            "log_prior": self.prior().log_prob(z), "log_posterior": log_q}

  def marginal(self):
    cov = self.w @ self.w.T + self.sigma**2 * np.eye(len(self.b), dtype=np.float32)
    return tfd.MultivariateNormalTriL(self.b, tf.linalg.cholesky(cov))

  def data(self, n=40):
    return self.marginal().sample(n, seed=[1, 1])


def _elbo(model, x, num_samples):
  return objectives.elbo_terms(x, model.encoder(x), model.decoder, model.prior(), num_samples,
                               SEED)["elbo"].numpy()


@pytest.mark.slow
def test_bounds_are_ordered_increase_with_k_and_reach_the_exact_marginal():
  # A non-optimal encoder: mean off by ~1.2 posterior std in one dimension, 1.5x too wide. (Much
  # further off, the weights are so heavy-tailed that one K=1000 estimate can overshoot.)
  model = LinearGaussian(shift=0.3, widen=1.5)
  x = model.data()
  log_px = model.marginal().log_prob(x).numpy().mean()
  elbo = _elbo(model, x, 20_000).mean()
  bounds = [evaluator_lib.iwae_bound(model, x, k, 500, SEED).numpy().mean()
            for k in (1, 10, 100, 1000, 20_000)]
  assert log_px - elbo > 1.0  # the encoder is far enough off to make the test meaningful
  assert elbo < bounds[1] < bounds[2] < bounds[3] < bounds[4] <= log_px + 1e-3
  np.testing.assert_allclose(bounds[0], elbo, atol=0.15)  # K = 1: one-sample ELBO estimate
  np.testing.assert_allclose(bounds[4], log_px, atol=0.01)


def test_exact_posterior_makes_elbo_and_every_log_weight_equal_log_px():
  model = LinearGaussian()
  x = model.data()
  log_px = model.marginal().log_prob(x).numpy()
  log_w = objectives.importance_log_weights(x, model.encoder(x), model.decoder, model.prior(),
                                            0, 3, SEED).numpy()
  np.testing.assert_allclose(log_w, np.broadcast_to(log_px, log_w.shape), atol=2e-4)
  np.testing.assert_allclose(_elbo(model, x, 50_000), log_px, atol=0.02)  # analytic KL + MC


def test_iwae_k1_equals_the_elbo_monte_carlo_estimate_on_the_same_noise():
  model = LinearGaussian(shift=0.3)
  x = model.data()
  q_z = model.encoder(x)
  z = objectives.sample_latents(q_z, 1, tf.random.experimental.stateless_fold_in(SEED, 0))
  mc_elbo = (model.decoder(z).log_prob(x) + model.prior().log_prob(z) - q_z.log_prob(z))[0]
  np.testing.assert_allclose(evaluator_lib.iwae_bound(model, x, 1, 500, SEED), mc_elbo, rtol=1e-6)


@pytest.mark.parametrize("chunk_size", [10, 30, 40, 1000])
def test_chunked_and_unchunked_give_the_same_number(chunk_size):
  model = LinearGaussian(shift=0.5)
  x = model.data()
  unchunked = evaluator_lib.iwae_bound(model, x, 95, 95, SEED)
  np.testing.assert_allclose(evaluator_lib.iwae_bound(model, x, 95, chunk_size, SEED), unchunked,
                             rtol=1e-6)
  chunked_in_graph = tf.function(lambda x: evaluator_lib.iwae_bound(model, x, 95, chunk_size, SEED))
  np.testing.assert_allclose(chunked_in_graph(x), unchunked, rtol=1e-6)


def test_rate_per_dimension_sums_to_the_rate():
  q_z = tfd.MultivariateNormalDiag([[0.5, -1.0, 0.0]], [[0.3, 1.0, 2.0]])
  per_dim = objectives.rate_per_dimension(q_z, networks.prior(3))
  np.testing.assert_allclose(tf.reduce_sum(per_dim, -1), objectives.rate(q_z, networks.prior(3)),
                             rtol=1e-6)
  assert per_dim[0, 1] == 0.5 * 1.0  # 0.5 * (1 + 1 - 1 - 0): only the mean contributes


@pytest.mark.slow
def test_evaluator_under_two_replicas_matches_one_and_reports_diagnostics():
  config = config_lib.Config(hidden_sizes=(32,), latent_dim=6, image_shape=(8, 8, 1),
                             eval_importance_samples=20)
  data = data_lib.load(config)
  dataset = data_lib.eval_dataset(data, "test", 100)
  one = trainer_lib.Trainer(config, tf.distribute.MirroredStrategy(["/cpu:0"]))
  one.train(iter(data_lib.train_dataset(data, config)), 100)
  two = trainer_lib.Trainer(config, tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
  for a, b in zip(one.model.variables, two.model.variables):
    b.assign(a.numpy())
  m1, m2 = one.evaluate(dataset), two.evaluate(dataset)
  assert m1["num_examples"] == m2["num_examples"] == 359
  for key in ("rate", "active_units", "elbo", "iwae_bound"):  # per-example noise: the same
    np.testing.assert_allclose(m1[key], m2[key], rtol=1e-5)
  assert m1["iwae_bound"] > m1["elbo"] and m1["nll"] == -m1["iwae_bound"]
  np.testing.assert_allclose(sum(m1["rate_per_dimension"]), m1["rate"], rtol=1e-4)
  assert 0 <= m1["active_units"] <= 6 and "bits_per_dim" not in m1  # Bernoulli: discrete


def _encoder_calls(model):
  """Counts the calls of model.encoder from now on (a list that grows by one per call)."""
  import functools  # pylint: disable=import-outside-toplevel
  calls, original = [], model.encoder.call

  @functools.wraps(original)
  def counted(*args, **kwargs):
    calls.append(1)
    return original(*args, **kwargs)

  model.encoder.call = counted
  return calls


@pytest.mark.parametrize("overrides", [
    {},
    {"binarization": "dequantize", "likelihood": "normal"},
    {"model": "pc_vae", "num_labels": "50", "labeled_batch_size": 16},
    {"model": "m2", "num_labels": "50", "labeled_batch_size": 16},
    {"model": "denoising_ae"},
], ids=["vae", "dequantized", "pc_vae", "m2", "denoising_ae"])
@pytest.mark.slow
def test_evaluation_does_not_depend_on_the_batch_size_or_replicas_and_encodes_once(overrides):
  config = config_lib.Config(hidden_sizes=(16,), latent_dim=3, image_shape=(8, 8, 1),
                             num_classes=10, num_samples=2).replace(**overrides)
  data = data_lib.load(config)
  one = trainer_lib.Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"))
  one.train(one.train_iterator(data), 20)
  two = trainer_lib.Trainer(config, tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
  for a, b in zip(one.model.variables, two.model.variables):
    b.assign(a.numpy())
  evaluator = evaluator_lib.Evaluator(one.model, one.strategy, num_importance_samples=20)
  calls = _encoder_calls(one.model)
  by_batch = {size: evaluator(data_lib.eval_dataset(data, "test", size)) for size in (7, 100, 359)}
  if config.family != "m2":  # calls are counted while tracing: one trace for every batch size
    assert len(calls) == 1, ("the Evaluator traced once per batch shape (7 and its remainder, "
                             "100 and 59, 359), or ran the encoder more than once per batch")
  by_batch["2 replicas"] = evaluator_lib.Evaluator(two.model, two.strategy, 20)(
      data_lib.eval_dataset(data, "test", 100))
  by_batch["chunks of 10 samples"] = evaluator_lib.Evaluator(one.model, one.strategy, 20,
                                                          chunk_size=10)(
      data_lib.eval_dataset(data, "test", 100))
  reference = by_batch[359]
  keys = [k for k in ("loss", "elbo", "iwae_bound", "distortion", "accuracy") if k in reference]
  assert "loss" in keys and "distortion" in keys
  for name, metrics in by_batch.items():
    for key in keys:
      np.testing.assert_allclose(metrics[key], reference[key], rtol=1e-5, err_msg=f"{name} {key}")


def test_pc_vae_encodes_and_draws_once_per_train_step():
  from tfvae import models  # pylint: disable=import-outside-toplevel
  config = config_lib.Config(model="pc_vae", hidden_sizes=(16,), latent_dim=3,
                             image_shape=(8, 8, 1), num_classes=10)
  model = models.build(config)
  calls = _encoder_calls(model)
  batch = {"image": tf.random.stateless_uniform([6, 8, 8, 1], [0, 1]),
           "label": tf.constant([0, 1, 2, -1, -1, -1], tf.int64)}
  terms = model.losses(batch, SEED, tf.constant(0, tf.int64), training=True)
  assert len(calls) == 1
  # The classifier sees the first posterior sample the distortion used.
  q_z = model.encoder(batch["image"])
  z = objectives.sample_latents(q_z, config.model.num_samples, SEED)[0]
  expected = -model.classifier(z).log_prob(tf.constant([0, 1, 2, 0, 0, 0])) * [1, 1, 1, 0, 0, 0]
  np.testing.assert_allclose(terms["classification_loss"], expected, rtol=1e-5)
