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

from tfvae.training import distribute
from tfvae import noise
from tfvae import objectives
from tfvae.models import interface

ACTIVE_UNIT_THRESHOLD = 0.01
EVAL_SEED = (1234, 5678)  # the same noise at every evaluation, so numbers are comparable


def iwae_bound(model, x, num_importance_samples, chunk_size, seed, q_z=None, index=None):
  """log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x), in chunks (Burda et al. 2016, eq. 8).

  Memory grows with chunk_size, not K: each chunk's log-weights are folded into a running
  logsumexp. The noise of sample k is fixed by (seed, k) (see noise.NOISE_BLOCK), so any
  chunk_size gives the same number.

  Args:
    model: a generative tfvae model (its log_weight_terms and noise_dim).
    x: float32 [B, H, W, C].
    num_importance_samples: Python int K >= 1.
    chunk_size: Python int, importance samples per chunk (rounded up to a multiple of
      noise.NOISE_BLOCK).
    seed: int32 Tensor [2].
    q_z: optional q(z|x) of x, if the caller has it (saves an encoder pass).
    index: optional int [B], the examples' indices in their split: each example's noise then
      depends on (seed, index, k) only, not on the batch (noise.importance_noise).

  Returns:
    float32 Tensor [B], nats.
  """
  num_blocks = math.ceil(num_importance_samples / noise.NOISE_BLOCK)
  blocks_per_chunk = min(num_blocks, max(1, chunk_size // noise.NOISE_BLOCK))
  chunk = blocks_per_chunk * noise.NOISE_BLOCK
  q_z = q_z if q_z is not None else model.posterior(x)
  batch = tf.shape(x)[0]
  num_chunks = math.ceil(num_blocks / blocks_per_chunk)

  def add_chunk(c, running):
    eps = noise.importance_noise(batch, model.noise_dim, c * blocks_per_chunk,
                                 blocks_per_chunk, seed, index)
    log_w = objectives.log_weights(model.log_weight_terms(x, q_z, eps))
    sample = tf.range(chunk) + c * chunk
    log_w = tf.where((sample < num_importance_samples)[:, None], log_w, -np.inf)
    return c + 1, tf.reduce_logsumexp(tf.stack([running, tf.reduce_logsumexp(log_w, 0)]), 0)

  # An explicit while loop (no autograph: tfvae's tf.functions are traced without it).
  _, running = tf.while_loop(lambda c, _: c < num_chunks, add_chunk,
                             (tf.constant(0), tf.fill([batch], -np.inf)))
  return running - math.log(num_importance_samples)


def bits_per_dim(nll, num_dims, pixel_levels=256):
  """Bits per dimension of discrete pixels from the nll of a density on [0, 1] pixels.

  (nll + N ln L) / (N ln 2), with L pixel levels: the density of x = (y + u) / L rescaled to
  the y scale. On uniformly dequantized data this is an upper bound on the discrete model's
  bits/dim (Theis, van den Oord & Bethge 2016, section 3.1); on y / (L - 1) pixels, the usual
  approximation.

  Args:
    nll: float or array, nats per example.
    num_dims: N, dimensions (pixels x channels) per example.
    pixel_levels: L, e.g. 256 for 8-bit images.

  Returns:
    float or array, bits per dimension.
  """
  return (nll + num_dims * math.log(pixel_levels)) / (num_dims * math.log(2))


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
    self._steps = {}  # one traced step per input signature: see _step_for

  def _step_for(self, element_spec):
    """The compiled step for batches of `element_spec`, traced once for every batch size.

    The signature's batch dimension is None (eval_dataset's partial last batch), so the full
    batches, the last one and other splits of the same structure share one graph instead of a
    trace per batch shape (each trace costs seconds: the model, the IWAE loop, the reductions).
    """
    key = repr(element_spec)
    if key not in self._steps:
      self._steps[key] = tf.function(self._step_fn, input_signature=[element_spec],
                                     autograph=False)
    return self._steps[key]

  def _replica_sums(self, batch):
    seed = tf.constant(EVAL_SEED, tf.int32)
    x = batch["image"]
    model = self.model
    if isinstance(model, interface.Conditional):  # q(z|x, c), p(z|c): the model given c
      model = model.given(model.condition(batch))
    # One encoder pass: the posterior the losses used also gives the latent diagnostics and
    # the importance samples; batch["index"] makes every example's noise batch-independent.
    terms, q_z = model.losses_and_posterior(batch, seed, tf.constant(0, tf.int64),
                                            training=False)
    sums = {k: _per_example_sum(v) for k, v in terms.items()}
    if isinstance(self.model, interface.Classifier):  # accuracy: over the labeled examples
      sums["num_labeled"] = tf.reduce_sum(tf.cast(batch["label"] >= 0, tf.float32))
    if (isinstance(self.model, interface.LabelConditional)
        and not isinstance(self.model, interface.Conditional)):  # M2: q(z|x, y) needs y
      sums.update(count=tf.cast(tf.shape(x)[0], tf.float32),
                  squared_error=tf.reduce_sum(tf.square(x - self.model.reconstruct(x))))
      return sums
    mean = q_z.mean()
    reconstruction = model.reconstruct_from(x, q_z)
    sums.update(count=tf.cast(tf.shape(x)[0], tf.float32),
                squared_error=tf.reduce_sum(tf.square(x - reconstruction)),
                posterior_mean=tf.reduce_sum(mean, 0),
                posterior_mean_sq=tf.reduce_sum(tf.square(mean), 0))
    if isinstance(self.model, interface.LatentVariableModel):
      per_dim = model.rate_per_dimension(q_z, seed, batch.get("index"))
      if per_dim is not None:
        sums["rate_per_dimension"] = tf.reduce_sum(per_dim, 0)
      if self.num_importance_samples:
        sums["iwae_bound"] = tf.reduce_sum(iwae_bound(
            model, x, self.num_importance_samples, self.chunk_size, seed, q_z=q_z,
            index=batch.get("index")))
    return sums

  def _calibration_sums_fn(self, batch):
    def replica_sums(batch):
      terms = self.model.losses(batch, tf.constant(EVAL_SEED, tf.int32),
                                tf.constant(0, tf.int64), training=False)  # the same noise
      return {"mean_squared_error": tf.reduce_sum(terms["mean_squared_error"], axis=0),
              "count": tf.cast(tf.shape(batch["image"])[0], tf.float32)}

    per_replica = self.strategy.run(replica_sums, args=(batch,))
    return {k: self.strategy.reduce("SUM", v, axis=None) for k, v in per_replica.items()}

  def calibrate(self, dataset):
    """Fits the model's calibrated likelihood scale on `dataset` (held-out data, e.g. the
    validation split): sigma^2 = the mean squared error per dimension of x to the decoder mean
    at the posterior samples `__call__` draws (the same noise), the closed-form maximizer over
    sigma of the ELBO that `__call__` then reports (the sigma-VAE's optimal sigma, Rybkin et
    al. 2021, sec. 4, fitted on held-out rather than training data). A model without a
    calibrated scale (`Model.calibrated`) is left as it is, without a pass over the data.

    Args:
      dataset: a finite dataset of batches {"image": float32 [B, *image_shape], ...}.

    Returns:
      float32 numpy [*S] ([] images, [D] vectors), the variance set, in the data's units
      squared; None for a model without a calibrated scale.
    """
    if not self.model.calibrated:
      return None
    batches = distribute.distribute_dataset(self.strategy, dataset)
    key = "calibrate " + repr(batches.element_spec)
    if key not in self._steps:
      self._steps[key] = tf.function(self._calibration_sums_fn,
                                     input_signature=[batches.element_spec], autograph=False)
    totals = {}
    for batch in batches:
      for k, v in self._steps[key](batch).items():
        totals[k] = totals.get(k, 0.0) + np.asarray(v, np.float64)
    variance = (totals["mean_squared_error"] / totals["count"]).astype(np.float32)
    self.model.calibrate(tf.constant(variance))
    return variance

  def _step_fn(self, batch):
    per_replica = self.strategy.run(self._replica_sums, args=(batch,))
    return {k: self.strategy.reduce("SUM", v, axis=None) for k, v in per_replica.items()}

  def __call__(self, dataset):
    """Metrics over `dataset` (batches {"image": float32 [B, H, W, C], ...}).

    Returns:
      dict of floats per example: every term of model.losses(training=False) -- loss (beta = 1:
      the negative ELBO for a VAE), distortion, and elbo, rate (VAE) or the penalty (AEs);
      with a calibrated normal likelihood mean_squared_error (per pixel or feature, at the
      posterior samples of the ELBO; the scale `calibrate` fits);
      squared_error (sum over pixels of (x - E[x | mean code])^2, pixel units, comparable across
      all models); active_units (int: dimensions whose code mean varies by more than 0.01 over
      the data). For generative models also rate_per_dimension (list of D floats) and, with
      K > 0, iwae_bound and nll = -iwae_bound (nats), and for a continuous likelihood
      bits_per_dim (see `bits_per_dim`, from nll or else -elbo). Models with a classifier:
      accuracy in [0, 1] over the examples with a label (label >= 0); M2 also
      generative_accuracy (argmax_y ELBO(x, y), likewise). Conditional models (cvae): every
      term given each example's condition c (interface.Conditional.given): the conditional
      elbo, and iwae_bound / nll bound log p(x|c). num_examples (int).
    """
    totals = {}
    batches = distribute.distribute_dataset(self.strategy, dataset)
    step = self._step_for(batches.element_spec)
    for batch in batches:
      for k, v in step(batch).items():
        totals[k] = totals.get(k, 0.0) + np.asarray(v, np.float64)
    totals_keys = set(totals)
    count = totals.pop("count")
    mean, mean_sq = totals.pop("posterior_mean", 0.0) / count, totals.pop(
        "posterior_mean_sq", 0.0) / count
    per_dim = totals.pop("rate_per_dimension", None)
    num_labeled = totals.pop("num_labeled", None)
    out = {k: float(v / count) for k, v in totals.items()}
    if num_labeled is not None:  # accuracy, generative_accuracy: over the labeled examples
      for k in [k for k in out if k.endswith("accuracy")]:
        out[k] = float(totals[k] / num_labeled) if num_labeled else float("nan")
    if "posterior_mean" in totals_keys:
      out["active_units"] = int(np.sum(mean_sq - mean**2 > ACTIVE_UNIT_THRESHOLD))
    if per_dim is not None:
      out["rate_per_dimension"] = [float(v) for v in per_dim / count]
    if "iwae_bound" in out:
      out["nll"] = -out["iwae_bound"]
    config = self.model.config
    if config.model.likelihood != "bernoulli" and "elbo" in out and len(config.data.image_shape) == 3:
      pixels = float(np.prod(config.data.image_shape))
      nll = out.get("nll", -out["elbo"])
      out["bits_per_dim"] = bits_per_dim(nll, pixels, config.data.pixel_levels)
    out["num_examples"] = int(count)
    return out


def _per_example_sum(terms):
  """The sum over the batch of per-example terms [B] (statistics [B, *S]: of their mean over
  S, e.g. mean_squared_error per feature of vectors)."""
  if terms.shape.rank > 1:
    terms = tf.reduce_mean(terms, axis=list(range(1, terms.shape.rank)))
  return tf.reduce_sum(terms)


def describe(metrics, config):
  """One line of the headline metrics a model has (from Evaluator metrics), for logs."""
  names = [("elbo", "elbo"), ("iwae_bound",
                              f"iwae_bound(K={config.training.eval_importance_samples})"),
           ("rate", "rate"), ("distortion", "distortion"), ("squared_error", "squared_error"),
           ("active_units", "active units"), ("accuracy", "accuracy"),
           ("generative_accuracy", "generative accuracy")]
  return "  ".join(f"{label} {metrics[k]:.3f}" if isinstance(metrics[k], float) else
                   f"{label} {metrics[k]}" for k, label in names if k in metrics)
