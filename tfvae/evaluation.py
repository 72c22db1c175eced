"""Held-out evaluation: ELBO terms, the importance-weighted bound, bits/dim, posterior diagnostics.

All values are nats per example unless the name says otherwise. The same `Evaluator` serves the
evaluations logged during training (small K) and `python -m tfvae.evaluate` (K = 5000).

References:
  Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016: the bound
  (eq. 8) and active units (section 5.2: Cov_x(E_q[z_d]) > 0.01).
"""

import math

import numpy as np
import tensorflow as tf

from tfvae import objectives

ACTIVE_UNIT_THRESHOLD = 0.01
EVAL_SEED = (1234, 5678)  # the same noise at every evaluation, so numbers are comparable


def iwae_bound(model, x, num_importance_samples, chunk_size, seed):
  """log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x), in chunks (Burda et al. 2016, eq. 8).

  Memory grows with chunk_size, not K: each chunk's log-weights are folded into a running
  logsumexp. The noise of sample k is fixed by (seed, k) (see objectives.NOISE_BLOCK), so any
  chunk_size gives the same number.

  Args:
    model: a tfvae model with encoder, decoder and prior().
    x: float32 [B, H, W, C].
    num_importance_samples: Python int K >= 1.
    chunk_size: Python int, importance samples per chunk (rounded up to a multiple of
      objectives.NOISE_BLOCK).
    seed: int32 Tensor [2].

  Returns:
    float32 Tensor [B], nats.
  """
  num_blocks = math.ceil(num_importance_samples / objectives.NOISE_BLOCK)
  blocks_per_chunk = min(num_blocks, max(1, chunk_size // objectives.NOISE_BLOCK))
  chunk = blocks_per_chunk * objectives.NOISE_BLOCK
  q_z, p_z = model.encoder(x), model.prior()
  running = tf.fill([tf.shape(x)[0]], -np.inf)
  for c in tf.range(math.ceil(num_blocks / blocks_per_chunk)):
    log_w = objectives.importance_log_weights(x, q_z, model.decoder, p_z, c * blocks_per_chunk,
                                              blocks_per_chunk, seed)
    index = tf.range(chunk) + c * chunk
    log_w = tf.where((index < num_importance_samples)[:, None], log_w, -np.inf)
    running = tf.reduce_logsumexp(tf.stack([running, tf.reduce_logsumexp(log_w, 0)]), 0)
  return running - math.log(num_importance_samples)


class Evaluator:
  """Evaluates a model over a finite dataset under a distribution strategy.

  Args:
    model: a tfvae model (its losses() at training=False give loss with beta = 1).
    strategy: tf.distribute.Strategy the model was built under.
    num_importance_samples: K for iwae_bound/nll; 0 skips them.
    chunk_size: importance samples evaluated at once (bounds memory).
  """

  def __init__(self, model, strategy, num_importance_samples=0, chunk_size=500):
    self.model = model
    self.strategy = strategy
    self.num_importance_samples = num_importance_samples
    self.chunk_size = chunk_size
    self._step = tf.function(self._step_fn)

  def _replica_sums(self, batch):
    seed = tf.constant(EVAL_SEED, tf.int32)
    x = batch["image"]
    terms = self.model.losses(batch, seed, tf.constant(0, tf.int64), training=False)
    q_z = self.model.encoder(x)
    mean = q_z.mean()
    sums = {k: tf.reduce_sum(v) for k, v in terms.items()}
    sums.update(count=tf.cast(tf.shape(x)[0], tf.float32),
                posterior_mean=tf.reduce_sum(mean, 0),
                posterior_mean_sq=tf.reduce_sum(tf.square(mean), 0),
                rate_per_dimension=tf.reduce_sum(
                    objectives.rate_per_dimension(q_z, self.model.prior()), 0))
    if self.num_importance_samples:
      sums["iwae_bound"] = tf.reduce_sum(iwae_bound(
          self.model, x, self.num_importance_samples, self.chunk_size, seed))
    return sums

  def _step_fn(self, batch):
    per_replica = self.strategy.run(self._replica_sums, args=(batch,))
    return {k: self.strategy.reduce("SUM", v, axis=None) for k, v in per_replica.items()}

  def __call__(self, dataset):
    """Metrics over `dataset` (batches {"image": float32 [B, H, W, C], ...}).

    Returns:
      dict: loss (beta = 1), elbo, rate, distortion, and with K > 0 iwae_bound and
      nll = -iwae_bound (floats, nats per example); active_units (int); rate_per_dimension
      (list of D floats); bits_per_dim (only for a continuous likelihood: the discrete 8-bit
      approximation (nll + N ln 256) / (N ln 2), N pixels, nll or else -elbo); num_examples.
    """
    totals = {}
    for batch in self.strategy.experimental_distribute_dataset(dataset):
      for k, v in self._step(batch).items():
        totals[k] = totals.get(k, 0.0) + np.asarray(v, np.float64)
    count = totals.pop("count")
    out = {k: float(totals[k] / count) for k in ("loss", "elbo", "rate", "distortion")}
    mean, mean_sq = totals.pop("posterior_mean") / count, totals.pop("posterior_mean_sq") / count
    out["active_units"] = int(np.sum(mean_sq - mean**2 > ACTIVE_UNIT_THRESHOLD))
    out["rate_per_dimension"] = [float(v) for v in totals["rate_per_dimension"] / count]
    if "iwae_bound" in totals:
      out["iwae_bound"] = float(totals["iwae_bound"] / count)
      out["nll"] = -out["iwae_bound"]
    config = self.model.config
    if config.likelihood != "bernoulli":
      pixels = float(np.prod(config.image_shape))
      nll = out.get("nll", -out["elbo"])
      out["bits_per_dim"] = (nll + pixels * math.log(256)) / (pixels * math.log(2))
    out["num_examples"] = int(count)
    return out
