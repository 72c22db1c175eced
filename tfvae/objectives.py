"""Pure per-example objective terms, in nats. Nothing here reduces over the batch.

Shapes: x [B, H, W, C]; q_z batch [B], event [D]; z [L, B, D]; log p(x|z) [L, B]; outputs [B].

References:
  Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014 (the ELBO, eq. 3 and 10).
  Higgins et al., "beta-VAE", ICLR 2017 (the beta weight on the rate).
  Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016 (eq. 8).
"""

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


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


def replica_normal_noise(num_samples, batch_size, latent_dim, seed):
  """Standard normal noise [L, b, D] for this replica's slice of the global batch.

  The noise is drawn for the whole global batch (b * num_replicas_in_sync rows) from `seed`
  and this replica takes its own rows, so every replica draws different noise and the result
  for a given global batch does not depend on how many replicas share it (exactly so when every
  replica holds b examples). Outside a distribution strategy it is plain stateless noise.

  Args:
    num_samples: int L.
    batch_size: int32 scalar b, this replica's batch size.
    latent_dim: int D.
    seed: int32 Tensor [2], a stateless seed.

  Returns:
    float32 Tensor [L, b, D].
  """
  context = tf.distribute.get_replica_context()
  num_replicas = context.num_replicas_in_sync if context else 1
  replica = tf.cast(context.replica_id_in_sync_group if context else 0, tf.int32)
  noise = tf.random.stateless_normal([num_samples, batch_size * num_replicas, latent_dim], seed,
                                     alg="philox")  # auto_select differs under XLA
  return noise[:, replica * batch_size:(replica + 1) * batch_size]


def sample_latents(q_z, num_samples, seed):
  """Reparameterized samples z = loc + scale * eps from q(z|x), eps as `replica_normal_noise`.

  Args:
    q_z: MultivariateNormalDiag (any loc-scale TransformedDistribution of a standard normal)
      with batch shape [B] and event shape [D].
    num_samples: int L.
    seed: int32 Tensor [2].

  Returns:
    float32 Tensor [L, B, D], differentiable with respect to q_z's parameters.
  """
  loc = q_z.loc
  eps = replica_normal_noise(num_samples, tf.shape(loc)[0], loc.shape[-1], seed)
  return q_z.bijector.forward(eps)


def elbo_terms(x, q_z, decoder, p_z, num_samples, seed, beta=1.0):
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

  Returns:
    dict of float32 Tensors [B], nats: loss, elbo, rate, distortion.
  """
  z = sample_latents(q_z, num_samples, seed)
  distortion = -tf.reduce_mean(decoder(z).log_prob(x), axis=0)
  kl = rate(q_z, p_z)
  return {"loss": distortion + beta * kl, "elbo": -(distortion + kl), "rate": kl,
          "distortion": distortion}


# Importance samples are drawn in blocks of this many, each block from its own folded seed, so a
# bound computed in chunks of any multiple of it sees the same noise as one computed at once.
NOISE_BLOCK = 10


def importance_log_weights(x, q_z, decoder, p_z, first_block, num_blocks, seed):
  """Importance log-weights log p(x|z_k) + log p(z_k) - log q(z_k|x) for a range of samples.

  Samples k = first_block * NOISE_BLOCK ... (first_block + num_blocks) * NOISE_BLOCK - 1; block j
  draws its noise with `replica_normal_noise` from the seed folded with j, so the weights of
  sample k do not depend on how the samples are chunked.

  Args:
    x: float32 [B, ...event].
    q_z: MultivariateNormalDiag, batch [B], event [D].
    decoder: callable z [K, B, D] -> p(x|z) with batch [K, B].
    p_z: the prior, event [D].
    first_block: int32 scalar (Python int or Tensor), index of the first noise block.
    num_blocks: Python int, number of blocks (static: it sets the chunk's memory).
    seed: int32 Tensor [2].

  Returns:
    float32 Tensor [num_blocks * NOISE_BLOCK, B], nats.
  """
  loc = q_z.loc
  eps = tf.concat([replica_normal_noise(
      NOISE_BLOCK, tf.shape(loc)[0], loc.shape[-1],
      tf.random.experimental.stateless_fold_in(seed, first_block + j)) for j in range(num_blocks)],
                  axis=0)
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
