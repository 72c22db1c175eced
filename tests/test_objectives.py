import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import networks
from tfvae import objectives

tfd = tfp.distributions


def _posterior(batch=5, dim=4, seed=0):
  rng = np.random.default_rng(seed)
  loc = rng.normal(size=[batch, dim]).astype(np.float32)
  scale = rng.uniform(0.2, 2.0, size=[batch, dim]).astype(np.float32)
  return tfd.MultivariateNormalDiag(loc, scale), loc, scale


def test_rate_equals_closed_form_gaussian_kl():
  q_z, mu, sigma = _posterior()
  expected = 0.5 * np.sum(sigma**2 + mu**2 - 1.0 - np.log(sigma**2), axis=-1)
  np.testing.assert_allclose(objectives.rate(q_z, networks.prior(4)), expected, rtol=1e-5)


def test_rate_matches_monte_carlo_estimate():
  q_z, _, _ = _posterior()
  z = q_z.sample(200_000, seed=[3, 4])
  log_ratio = (q_z.log_prob(z) - networks.prior(4).log_prob(z)).numpy()
  estimate = log_ratio.mean(axis=0)
  stderr = log_ratio.std(axis=0) / np.sqrt(len(log_ratio))
  assert np.all(np.abs(estimate - objectives.rate(q_z, networks.prior(4))) < 5 * stderr)


def test_sample_latents_is_reparameterized_and_deterministic():
  q_z, loc, scale = _posterior()
  seed = tf.constant([1, 2], tf.int32)
  z = objectives.sample_latents(q_z, 3, seed)
  eps = tf.random.stateless_normal([3, 5, 4], seed)
  np.testing.assert_allclose(z, loc + scale * eps, rtol=1e-6)
  np.testing.assert_array_equal(z, objectives.sample_latents(q_z, 3, seed))
  loc_var = tf.Variable(loc)
  with tf.GradientTape() as tape:
    total = tf.reduce_sum(objectives.sample_latents(tfd.MultivariateNormalDiag(loc_var, scale),
                                                    3, seed))
  np.testing.assert_allclose(tape.gradient(total, loc_var), np.full_like(loc, 3.0))


def test_replica_noise_is_the_global_batch_noise_split_across_replicas():
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  seed = tf.constant([5, 6], tf.int32)
  per_replica = strategy.run(lambda: objectives.replica_normal_noise(2, 3, 4, seed))
  parts = strategy.experimental_local_results(per_replica)
  np.testing.assert_array_equal(tf.concat(parts, axis=1),
                                objectives.replica_normal_noise(2, 6, 4, seed))
  assert not np.allclose(parts[0], parts[1])


def test_elbo_terms_relations_and_monte_carlo_agreement():
  q_z, _, _ = _posterior(batch=3, dim=2)
  logits = tf.constant(np.random.default_rng(1).normal(size=[2, 6]), tf.float32)
  decoder = lambda z: tfd.Independent(tfd.Bernoulli(logits=tf.matmul(z, logits)), 1)
  x = tf.constant(np.random.default_rng(2).integers(0, 2, [3, 6]), tf.float32)
  terms = objectives.elbo_terms(x, q_z, decoder, networks.prior(2), 1, tf.constant([0, 1]),
                                beta=0.5)
  np.testing.assert_allclose(terms["elbo"], -(terms["distortion"] + terms["rate"]), rtol=1e-6)
  np.testing.assert_allclose(terms["loss"], terms["distortion"] + 0.5 * terms["rate"],
                             rtol=1e-6)
  # The single-sample distortion is unbiased: its mean over many samples is -E_q log p(x|z).
  many = objectives.elbo_terms(x, q_z, decoder, networks.prior(2), 100_000, tf.constant([0, 1]))
  z = q_z.sample(100_000, seed=[7, 8])
  np.testing.assert_allclose(many["distortion"], -tf.reduce_mean(decoder(z).log_prob(x), 0),
                             rtol=0.02)


def test_iwae_bound_k1_is_the_log_weight_and_matches_logsumexp():
  log_w = np.random.default_rng(0).normal(size=[7, 3]).astype(np.float32) * 5
  np.testing.assert_allclose(objectives.iwae_bound(log_w[:1]), log_w[0], rtol=1e-6)
  expected = np.log(np.mean(np.exp(log_w.astype(np.float64)), axis=0))
  np.testing.assert_allclose(objectives.iwae_bound(log_w), expected, rtol=1e-5)
  assert np.all(objectives.iwae_bound(log_w) >= log_w.mean(axis=0))  # Jensen


def test_iwae_bound_rejects_wrong_rank():
  with pytest.raises(ValueError, match="num_samples, batch_size"):
    objectives.iwae_bound(tf.zeros([3]))
