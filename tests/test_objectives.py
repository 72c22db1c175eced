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


def _beta(step, schedule, **kwargs):
  return float(objectives.scheduled_beta(step, 4.0, schedule, **kwargs))


def test_constant_and_linear_beta_schedules_hit_endpoints_and_midpoint():
  assert _beta(0, "constant") == _beta(10**6, "constant") == 4.0
  assert _beta(0, "linear", warmup_steps=100) == 0.0
  assert _beta(50, "linear", warmup_steps=100) == 2.0
  assert _beta(25, "linear", warmup_steps=100) == 1.0
  assert _beta(100, "linear", warmup_steps=100) == 4.0
  assert _beta(10**6, "linear", warmup_steps=100) == 4.0
  # The same as a tensor step (how the model calls it inside tf.function).
  assert float(objectives.scheduled_beta(tf.constant(50, tf.int64), 4.0, "linear", 100)) == 2.0


def test_cyclical_beta_schedule_restarts_every_cycle_then_holds():
  kw = dict(warmup_steps=100, num_cycles=3)  # cycles of 200 steps: ramp 100, hold 100
  for cycle in range(3):
    start = 200 * cycle
    assert _beta(start, "cyclical", **kw) == 0.0
    assert _beta(start + 50, "cyclical", **kw) == 2.0
    assert _beta(start + 100, "cyclical", **kw) == 4.0
    assert _beta(start + 150, "cyclical", **kw) == 4.0
    assert _beta(start + 199, "cyclical", **kw) == 4.0
  assert _beta(600, "cyclical", **kw) == 4.0  # after the last cycle: no restart
  assert _beta(650, "cyclical", **kw) == 4.0


def test_schedule_without_warmup_is_rejected():
  with pytest.raises(ValueError, match="warmup_steps"):
    objectives.scheduled_beta(0, 1.0, "linear", warmup_steps=0)


def test_free_bits_never_lets_a_dimension_fall_below_the_floor():
  q_z, loc, scale = _posterior(batch=6, dim=4)
  p_z = networks.prior(4)
  per_dim = objectives.rate_per_dimension(q_z, p_z).numpy()
  floor = float(np.median(per_dim))  # half the dimensions are below it
  got = objectives.rate_with_free_bits(q_z, p_z, floor).numpy()
  np.testing.assert_allclose(got, np.maximum(per_dim, floor).sum(-1), rtol=1e-6)
  assert np.all(got >= 4 * floor - 1e-5)
  np.testing.assert_allclose(objectives.rate_with_free_bits(q_z, p_z, 0.0),
                             objectives.rate(q_z, p_z), rtol=1e-5)
  # Below the floor a dimension gets no gradient: the optimizer is not pushed to shrink it.
  loc_var = tf.Variable(loc)
  with tf.GradientTape() as tape:
    clamped = tf.reduce_sum(objectives.rate_with_free_bits(
        tfd.MultivariateNormalDiag(loc_var, scale), p_z, floor))
  grad = tape.gradient(clamped, loc_var).numpy()
  assert np.all(grad[per_dim < floor] == 0) and np.all(grad[per_dim > floor] != 0)


def test_sparsity_penalty_is_lambda_times_l1_norm():
  code = tf.constant([[1.0, -2.0, 0.5], [0.0, 0.0, -3.0]])
  np.testing.assert_allclose(objectives.sparsity_penalty(code, 0.1), [0.35, 0.3], rtol=1e-6)


def test_contractive_penalty_of_a_linear_encoder_is_the_frobenius_norm_of_w():
  rng = np.random.default_rng(0)
  w = tf.constant(rng.normal(size=[12, 3]).astype(np.float32))
  x = tf.constant(rng.normal(size=[4, 2, 2, 3]).astype(np.float32))
  code, penalty = objectives.contractive_penalty(
      lambda inputs: tf.reshape(inputs, [-1, 12]) @ w, x, 0.5)
  np.testing.assert_allclose(code, tf.reshape(x, [-1, 12]) @ w, rtol=1e-6)
  np.testing.assert_allclose(penalty, np.full(4, 0.5 * np.sum(w.numpy() ** 2)), rtol=1e-5)


def test_contractive_penalty_of_a_nonlinear_encoder_matches_finite_differences():
  rng = np.random.default_rng(1)
  w = tf.constant(rng.normal(size=[5, 3]).astype(np.float64))
  encode = lambda inputs: tf.tanh(inputs @ w)  # pylint: disable=unnecessary-lambda-assignment
  x = rng.normal(size=[2, 5])
  _, penalty = objectives.contractive_penalty(encode, tf.constant(x), 1.0)
  eps, expected = 1e-6, []
  for b in range(2):
    jac = np.stack([(encode(tf.constant(x[b:b + 1] + eps * np.eye(5)[i]))
                     - encode(tf.constant(x[b:b + 1] - eps * np.eye(5)[i]))).numpy()[0] / (2 * eps)
                    for i in range(5)])
    expected.append(np.sum(jac ** 2))
  np.testing.assert_allclose(penalty, expected, rtol=1e-6)
  # And it is differentiable with respect to the encoder's weights (second-order autodiff).
  # Its gradient with respect to the encoder's weights (second-order autodiff) matches finite
  # differences of the penalty in one weight.
  w_var = tf.Variable(w)
  with tf.GradientTape() as tape:
    _, p = objectives.contractive_penalty(lambda inputs: tf.tanh(inputs @ w_var), tf.constant(x),
                                          1.0)
    total = tf.reduce_sum(p)
  grad = tape.gradient(total, w_var).numpy()

  def total_at(w_value):
    return float(tf.reduce_sum(objectives.contractive_penalty(
        lambda inputs: tf.tanh(inputs @ tf.constant(w_value)), tf.constant(x), 1.0)[1]))

  bump = np.zeros_like(w.numpy())
  bump[2, 1] = 1e-6
  numeric = (total_at(w.numpy() + bump) - total_at(w.numpy() - bump)) / 2e-6
  np.testing.assert_allclose(grad[2, 1], numeric, rtol=1e-5)


@pytest.mark.parametrize("corruption", ["masking", "gaussian"])
def test_corruption_at_level_zero_is_the_identity_and_masking_drops_a_fraction(corruption):
  x = tf.random.stateless_uniform([64, 8, 8, 1], [1, 2], minval=0.1, maxval=1.0)
  seed = tf.constant([3, 4], tf.int32)
  np.testing.assert_array_equal(objectives.corrupt(x, corruption, 0.0, seed), x)
  y = objectives.corrupt(x, corruption, 0.3, seed).numpy()
  if corruption == "masking":
    dropped = y == 0
    assert abs(dropped.mean() - 0.3) < 0.02
    np.testing.assert_array_equal(y[~dropped], x.numpy()[~dropped])
  else:
    np.testing.assert_allclose(np.std(y - x.numpy()), 0.3, rtol=0.05)
