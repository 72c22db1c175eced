"""Pure per-example objective terms, in nats. Nothing here reduces over the batch.

Shapes: x [B, H, W, C]; q_z batch [B], event [D]; z [L, B, D]; log p(x|z) [L, B]; outputs [B].

References:
  Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014 (the ELBO, eq. 3 and 10).
  Higgins et al., "beta-VAE", ICLR 2017 (the beta weight on the rate).
  Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016 (eq. 8).
  Tucker, Lawson, Gu & Maddison, "Doubly reparameterized gradient estimators for Monte Carlo
  objectives", ICLR 2019 (eq. 5: the DReG estimator of the IWAE gradient).
"""

import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import noise

tfd = tfp.distributions


def has_analytic_rate(q_z, p_z):
  """Whether TFP has an analytic KL(q_z || p_z) for this pair of distributions (`rate` works;
  else the rate is the Monte Carlo estimate log q - log p at the posterior samples)."""
  try:
    tfd.kl_divergence(q_z, p_z)
    return True
  except NotImplementedError:
    return False


def rate(q_z, p_z):
  """Analytic KL(q(z|x) || p(z)) per example.

  Args:
    q_z: distribution with batch shape [B] and event shape [D].
    p_z: distribution with event shape [D], batch shape [] or [B].

  Returns:
    float32 Tensor [B], nats.

  Raises:
    NotImplementedError: (from TFP) if no analytic KL is registered for the pair.
  """
  return tfd.kl_divergence(q_z, p_z)


def reparameterize(q_z, eps):
  """z ~ q(z|x) from standard normal noise, and its exact log q(z|x).

  Args:
    q_z: MultivariateNormalDiag (z = loc + scale * eps) or tfvae.flows.FlowPosterior (the
      flow applied to that; log q by the change of variables), batch [B], event [D].
    eps: float32 [L, B, D].

  Returns:
    (z float32 [L, B, D], differentiable in q_z's parameters; log_q float32 [L, B], nats).
  """
  from tfvae import flows  # pylint: disable=import-outside-toplevel
  if isinstance(q_z, flows.FlowPosterior):
    return q_z.sample_from_noise(eps)
  z = q_z.bijector.forward(eps)
  return z, q_z.log_prob(z)


def sample_latents(q_z, num_samples, seed, index=None):
  """Reparameterized samples z = loc + scale * eps from q(z|x), eps from
  `noise.replica_normal_noise`.

  Args:
    q_z: MultivariateNormalDiag (any loc-scale TransformedDistribution of a standard normal)
      with batch shape [B] and event shape [D].
    num_samples: int L.
    seed: int32 Tensor [2].
    index: optional int Tensor [B]: per-example noise (see `noise.replica_normal_noise`).

  Returns:
    float32 Tensor [L, B, D], differentiable with respect to q_z's parameters.
  """
  loc = q_z.loc
  eps = noise.replica_normal_noise(num_samples, tf.shape(loc)[0], loc.shape[-1], seed, index)
  return q_z.bijector.forward(eps)


def bound_terms(parts, rate_closed_form=None):
  """The ELBO and its parts from the log-densities at L posterior samples.

  distortion = -(1/L) sum_l log p(x|z_l); rate = KL(q(z|x) || p(z)): `rate_closed_form` where
  given (analytic), else the Monte Carlo estimate (1/L) sum_l log q(z_l|x) - log p(z_l);
  elbo = -(distortion + rate).

  Args:
    parts: dict of float32 [L, B], nats: log_likelihood (log p(x|z)), log_prior (log p(z)),
      log_posterior (log q(z|x)).
    rate_closed_form: optional float32 [B].

  Returns:
    dict of float32 [B], nats: elbo, rate, distortion.
  """
  distortion = -tf.reduce_mean(parts["log_likelihood"], 0)
  rate_ = rate_closed_form
  if rate_ is None:
    rate_ = tf.reduce_mean(parts["log_posterior"] - parts["log_prior"], 0)
  return {"elbo": -(distortion + rate_), "rate": rate_, "distortion": distortion}


def log_weights(parts, beta=1.0):
  """log w_l = log p(x|z_l) + beta (log p(z_l) - log q(z_l|x)), float32 [L, B] (beta = 1: the
  importance log-weights of `iwae_bound`)."""
  return parts["log_likelihood"] + beta * (parts["log_prior"] - parts["log_posterior"])


def dreg_surrogate(parts, detached_parts, beta=1.0):
  """A scalar-per-example surrogate whose gradient is the doubly reparameterized (DReG)
  estimator of the gradient of the IWAE bound (Tucker et al. 2019, eq. 5 and 7):

  encoder (phi): sum_k w~_k^2 d log w_k / d z_k  d z_k / d phi, with log q's parameters held
    fixed in log w (only the path through z);
  decoder and prior (theta): sum_k w~_k d log w_k / d theta, the IWAE gradient;
  w~ = softmax_k(log w), held fixed.

  Args:
    parts: log_likelihood, log_prior [L, B] at z_k (differentiable in z and theta) and
      log_posterior [L, B] evaluated with q's parameters stopped (differentiable in z only).
    detached_parts: log_likelihood and log_prior at stop_gradient(z) (theta only).
    beta: the rate weight inside the weights (1 for the bound).

  Returns:
    float32 [B]: its value is the negative bound; minimize it.
  """
  log_w = log_weights(parts, beta)
  w = tf.stop_gradient(tf.nn.softmax(log_w, axis=0))
  detached = detached_parts["log_likelihood"] + beta * detached_parts["log_prior"]
  surrogate = -tf.reduce_sum(tf.square(w) * log_w + (w - tf.square(w)) * detached, 0)
  value = -iwae_bound(log_w)
  return tf.stop_gradient(value) + surrogate - tf.stop_gradient(surrogate)


def elbo_terms(x, q_z, decoder, p_z, num_samples, seed, beta=1.0, index=None):
  """The beta-weighted negative ELBO and its parts, per example (Kingma & Welling 2014, eq. 10).

  distortion = -(1/L) sum_l log p(x|z_l), z_l ~ q(z|x) reparameterized;
  rate = KL(q(z|x) || p(z)), analytic; elbo = -(distortion + rate); loss = distortion + beta*rate.

  Args:
    x: float32 [B, H, W, C].
    q_z: q(z|x), batch [B], event [D].
    decoder: callable z [L, B, D] -> p(x|z) with batch [L, B] and event [H, W, C].
    p_z: the prior, event [D].
    num_samples: int L >= 1.
    seed: int32 Tensor [2], stateless seed for the reparameterization noise.
    beta: float or scalar Tensor, weight of the rate in `loss`.
    index: optional int Tensor [B]: per-example noise (see `noise.replica_normal_noise`).

  Returns:
    dict of float32 Tensors [B], nats: loss, elbo, rate, distortion.
  """
  return elbo_terms_at(x, sample_latents(q_z, num_samples, seed, index), q_z, decoder, p_z, beta)


def elbo_terms_at(x, z, q_z, decoder, p_z, beta=1.0):
  """`elbo_terms` at given posterior samples z [L, B, D] (e.g. shared with a classifier)."""
  distortion = -tf.reduce_mean(decoder(z).log_prob(x), axis=0)
  kl = rate(q_z, p_z)
  return {"loss": distortion + beta * kl, "elbo": -(distortion + kl), "rate": kl,
          "distortion": distortion}


def importance_log_weights(x, q_z, decoder, p_z, first_block, num_blocks, seed, index=None):
  """Importance log-weights log p(x|z_k) + log p(z_k) - log q(z_k|x) for a range of samples.

  Samples k = first_block * NOISE_BLOCK ... (first_block + num_blocks) * NOISE_BLOCK - 1, their
  noise as `noise.importance_noise` draws it: the weights of sample k do not depend on how the
  samples are chunked nor, with `index`, on the batch.

  Args:
    x: float32 [B, ...event].
    q_z: MultivariateNormalDiag, batch [B], event [D].
    decoder: callable z [K, B, D] -> p(x|z) with batch [K, B].
    p_z: the prior, event [D].
    first_block: int32 scalar (Python int or Tensor), index of the first noise block.
    num_blocks: Python int, number of blocks (static: it sets the chunk's memory).
    seed: int32 Tensor [2].
    index: optional int Tensor [B]: per-example noise (see `noise.importance_noise`).

  Returns:
    float32 Tensor [num_blocks * noise.NOISE_BLOCK, B], nats.
  """
  loc = q_z.loc
  eps = noise.importance_noise(tf.shape(loc)[0], loc.shape[-1], first_block, num_blocks, seed,
                               index)
  z = q_z.bijector.forward(eps)
  return decoder(z).log_prob(x) + p_z.log_prob(z) - q_z.log_prob(z)


def rate_per_dimension(q_z, p_z):
  """KL(q(z_d|x) || p(z_d)) for each latent dimension d, for factorized Gaussians.

  Args:
    q_z, p_z: MultivariateNormalDiag (q batch [B], event [D]; p event [D]).

  Returns:
    float32 Tensor [B, D], nats; sums over D to `rate(q_z, p_z)`.
  """
  return tfd.kl_divergence(tfd.Normal(q_z.mean(), q_z.stddev()),
                           tfd.Normal(p_z.mean(), p_z.stddev()))


def iwae_bound(log_weights):
  """Importance-weighted lower bound on log p(x) (Burda et al., 2016, eq. 8).

  log (1/K) sum_k exp(log_weights[k]).

  Args:
    log_weights: float Tensor [num_samples, batch_size]; log p(x, z_k) - log q(z_k|x), nats.

  Returns:
    Tensor [batch_size], nats. Equals the ELBO estimate on the same samples when K == 1.

  Raises:
    ValueError: if log_weights does not have rank 2.
  """
  log_weights = tf.convert_to_tensor(log_weights)
  if log_weights.shape.rank != 2:
    raise ValueError(f"log_weights must be [num_samples, batch_size], got {log_weights.shape}.")
  num = tf.cast(tf.shape(log_weights)[0], log_weights.dtype)
  return tf.reduce_logsumexp(log_weights, axis=0) - tf.math.log(num)


def scheduled_beta(step, beta, schedule="constant", warmup_steps=0, num_cycles=1):
  """The rate weight at a global step.

  constant: beta.
  linear: beta * min(1, step / warmup_steps) -- KL annealing (Bowman et al., "Generating
    sentences from a continuous space", CoNLL 2016).
  cyclical: num_cycles cycles of 2 * warmup_steps steps; in each, beta * min(1, t / warmup_steps)
    with t the step within the cycle (ramp over the first half, hold over the second: Fu et al.,
    "Cyclical annealing schedule", NAACL 2019, with R = 0.5); beta after the last cycle.

  Args:
    step: int64 or int scalar (Tensor or Python), the global step (0 = first update).
    beta: float, the final weight.
    schedule: "constant", "linear" or "cyclical".
    warmup_steps: int >= 1 for linear and cyclical.
    num_cycles: int >= 1, cycles of the cyclical schedule.

  Returns:
    float32 scalar Tensor.

  Raises:
    ValueError: for an unknown schedule or warmup_steps < 1 with a non-constant schedule.
  """
  if schedule == "constant":
    return tf.constant(beta, tf.float32)
  if schedule not in ("linear", "cyclical") or warmup_steps < 1:
    raise ValueError(f"schedule={schedule!r} with warmup_steps={warmup_steps}: expected linear or "
                     "cyclical with warmup_steps >= 1, or constant.")
  step = tf.cast(step, tf.float32)
  if schedule == "cyclical":
    period = 2.0 * warmup_steps
    within = step - period * tf.math.floor(step / period)
    step = tf.where(step < period * num_cycles, within, period)
  return beta * tf.minimum(1.0, step / warmup_steps)


def rate_with_free_bits(q_z, p_z, free_bits):
  """The rate term of the loss with free bits: sum_d max(free_bits, KL_d), per example.

  A variant of Kingma et al., "Improved variational inference with inverse autoregressive flow",
  NeurIPS 2016 (eq. 15), which clamps minibatch averages; clamping per example keeps the loss
  per-example (and identical under any replica split). Below the floor a dimension's KL gets no
  gradient, so the optimizer has no incentive to push it further down.

  Args:
    q_z, p_z: MultivariateNormalDiag (q batch [B], event [D]; p event [D]).
    free_bits: float >= 0, nats per dimension.

  Returns:
    float32 Tensor [B], nats, >= D * free_bits.
  """
  return tf.reduce_sum(tf.maximum(rate_per_dimension(q_z, p_z), free_bits), axis=-1)


def corrupt(x, corruption, level, seed):
  """Input corruption of the denoising autoencoder (Vincent et al., ICML 2008 and JMLR 2010).

  masking: each pixel is set to 0 with probability `level` (nu), independently.
  gaussian: x + level * eps, eps ~ N(0, 1) (sigma = level; not clipped).

  Args:
    x: float32 [B, H, W, C].
    corruption: "masking" or "gaussian".
    level: float, nu in [0, 1) or sigma >= 0. level = 0 returns x unchanged.
    seed: int32 Tensor [2] (noise drawn per replica slice of the global batch).

  Returns:
    float32 Tensor [B, H, W, C].
  """
  batch, event = tf.shape(x)[0], x.shape[1:]
  if corruption == "masking":
    u = noise.replica_noise(lambda s, sd: tf.random.stateless_uniform(s, sd, alg="philox"),
                            batch, event, seed)
    return tf.where(u < level, tf.zeros_like(x), x)
  if corruption == "gaussian":
    eps = noise.replica_noise(lambda s, sd: tf.random.stateless_normal(s, sd, alg="philox"),
                              batch, event, seed)
    return x + level * eps
  raise ValueError(f"corruption={corruption!r}: expected masking or gaussian.")


def sparsity_penalty(code, weight):
  """lambda * ||h||_1 per example (the L1 sparse autoencoder penalty; Goodfellow et al., Deep
  Learning, 2016, section 14.2.1).

  Args:
    code: float32 [B, D].
    weight: float lambda >= 0.

  Returns:
    float32 Tensor [B].
  """
  return weight * tf.reduce_sum(tf.abs(code), axis=-1)


def contractive_penalty(encode, x, weight):
  """lambda * ||dh/dx||_F^2 per example, the exact squared Frobenius norm of the encoder's
  Jacobian, by reverse-mode autodiff (Rifai et al., "Contractive auto-encoders", ICML 2011, eq. 2).

  Costs about D backward passes through the encoder (one per code dimension, vectorized).

  Args:
    encode: callable x [B, ...] -> code h [B, D]; example b's code must depend only on x[b].
    x: float32 [B, ...].
    weight: float lambda >= 0.

  Returns:
    (code [B, D], penalty float32 [B]); differentiable with respect to the encoder's weights.
  """
  with tf.GradientTape(watch_accessed_variables=False) as tape:
    tape.watch(x)
    code = encode(x)
  jacobian = tape.batch_jacobian(code, x)  # [B, D, ...]
  squared = tf.reshape(tf.square(jacobian), [tf.shape(x)[0], -1])
  return code, weight * tf.reduce_sum(squared, axis=-1)
