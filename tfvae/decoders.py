"""The decoder p(x|z) and its likelihoods: a Keras 3 model z float32 [..., latent_dim] ->
a `tfp.distributions` object with batch [...] and event image_shape ([H, W, C] images, [D]
vectors), the named likelihoods' parameters and the sigma-VAE's calibrated shared scale.
The encoders, the shared network bodies and the classifier are tfvae/networks.py.
"""

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.networks import dense_stack

tfd = tfp.distributions

# A lower bound that keeps log-densities finite on ordinary data.
MIN_LIKELIHOOD_SCALE = 1e-3
# Likelihoods with a learned scale that does not depend on z: one shared by all pixels of an
# image, one per feature of a vector [D] (features have their own units).
SHARED_SCALE_LIKELIHOODS = ("normal", "laplace", "negative_binomial")
# Likelihoods whose shared scale is calibrated rather than learned by gradient: the sigma-VAE
# (Rybkin et al. 2021). The train loss uses the batch's closed-form optimal scale; the stored
# scale is fitted on the validation split (Decoder.set_scale), else a moving average of the
# train batches' (SCALE_DECAY).
CALIBRATED_LIKELIHOODS = ("normal",)
# The moving average of the calibrated variance after train step t (0-based) has decay
# min(SCALE_DECAY, t / (t + 10)): the first step sets it, later ones average ~100 steps.
SCALE_DECAY = 0.99
# Likelihoods of counts (non-negative integer features).
COUNT_LIKELIHOODS = ("poisson", "negative_binomial")


class Bernoulli(tfd.Bernoulli):
  """`tfd.Bernoulli` whose log_prob from logits l is x * l - softplus(l): one softplus per pixel.

  tfd.Bernoulli computes (1 - x) * -softplus(l) + x * -softplus(-l), two softplus and two
  multiply_no_nan per pixel and as many again in the gradient; the two are equal for every x
  (softplus(l) - softplus(-l) = l) and agree to float32 rounding for finite logits
  (tests/test_networks.py). In the importance-weighted bound (784 pixels x K samples per
  image) TFP's form took longer than the decoder's forward pass; this one takes half as long
  (docs/speed.md). Infinite logits give NaN here (where tfd.Bernoulli gives 0 or -inf); the
  trainer skips a non-finite loss.

  Args and shapes as tfd.Bernoulli; one constructed from `probs` has tfd.Bernoulli's log_prob.
  """

  def _log_prob(self, event):
    if self._logits is None:
      return super()._log_prob(event)
    logits = tf.convert_to_tensor(self._logits)
    return tf.cast(event, logits.dtype) * logits - tf.math.softplus(logits)


class Decoder(keras.Model):
  """z [..., D] -> p(x|z) with batch shape [...] and event shape image_shape [H, W, C].

  likelihood="bernoulli": Independent(Bernoulli(logits), 3), for binary pixels.
  likelihood="normal": Independent(Normal(loc, scale), 3) with one scale shared by all pixels
  (lower-bounded by MIN_LIKELIHOOD_SCALE), calibrated as in the sigma-VAE (Rybkin et al.,
  "Simple and Effective VAE Training with Calibrated Decoders", ICML 2021): in training the
  loss uses the batch's optimal scale, sqrt(mean squared error) (`fit_scale`); the stored
  scale `raw_scale`, which evaluation, sampling and the export use, is fitted on held-out data
  where there are some (`set_scale`: the training run sets it at every validation) and is
  otherwise a moving average of the train batches' (`update_scale`).
  likelihood="normal_per_pixel": Independent(Normal(loc, scale), 3), the network outputs loc and
  scale = softplus(.) + MIN_LIKELIHOOD_SCALE for every pixel.
  likelihood="laplace": Independent(Laplace(loc, scale), 3) with one learned shared scale;
  -log p is |x - loc| / scale + log(2 scale) per pixel (the L1 loss).
  likelihood="continuous_bernoulli": Independent(ContinuousBernoulli(logits), 3), a normalized
  density on [0, 1] (Loaiza-Ganem & Cunningham, "The continuous Bernoulli", NeurIPS 2019).
  likelihood="poisson": Independent(Poisson(log_rate)), for counts.
  likelihood="negative_binomial": Independent(NegativeBinomial) with mean exp(out) and a learned
  dispersion (variance mean + dispersion * mean^2), for overdispersed counts.
  For vectors (image_shape [D], mlp only) the event is [D] and the learned scale of normal,
  laplace and negative_binomial is one per feature.

  net: optional Keras model z [N, latent_dim] -> parameters [N, ...] (replaces the built
  network; mapped to p(x|z) by `likelihood_layer` when given, else by the named likelihood) or
  -> a tfd.Distribution p(x|z) with batch [N] and event image_shape (used as it is).
  likelihood_layer: optional Keras layer parameters [..., *param_shape] -> a tfd.Distribution
  with batch [...] and event image_shape. tfvae/network_checks.py checks both first.
  """

  def __init__(self, image_shape, latent_dim, architecture="mlp", hidden_sizes=(256, 128),
               conv_filters=(32, 64), likelihood="bernoulli", net=None, likelihood_layer=None,
               **kwargs):
    super().__init__(**kwargs)
    self.image_shape = tuple(image_shape)
    self.latent_dim = latent_dim
    self.likelihood = likelihood
    self.returns_distribution = False
    if net is None:
      net, self.out_shape = self._built_net(architecture, hidden_sizes, conv_filters)
    else:
      out = net(tf.zeros([1, latent_dim]))
      self.returns_distribution = isinstance(out, tfd.Distribution)
      self.out_shape = None if self.returns_distribution else tuple(out.shape[1:])
    self.net = net
    self.likelihood_layer = likelihood_layer
    self.calibrated = False
    if (likelihood in SHARED_SCALE_LIKELIHOODS and likelihood_layer is None
        and not self.returns_distribution):  # one per feature for vectors, else one
      self.raw_scale = self.add_weight(
          name="raw_scale", shape=self.image_shape if len(self.image_shape) == 1 else (),
          dtype="float32", autocast=False,  # float32 also under a bfloat16 policy
          initializer=keras.initializers.Constant(float(np.log(np.expm1(1.0)))))
      self.calibrated = likelihood in CALIBRATED_LIKELIHOODS

  def _built_net(self, architecture, hidden_sizes, conv_filters):
    """(the decoder network built from the arguments, its per-example output shape)."""
    likelihood = self.likelihood
    if len(self.image_shape) == 1 and architecture == "conv":
      raise ValueError(f"--architecture={architecture} needs images; vectors "
                       f"{self.image_shape} use the mlp.")
    out_shape = self.image_shape
    if likelihood == "normal_per_pixel":  # loc and raw scale, stacked on the last axis
      out_shape = (*self.image_shape[:-1], 2 * self.image_shape[-1])
    layers = [keras.Input((self.latent_dim,))]
    if architecture != "conv":
      layers += dense_stack(architecture, list(reversed(hidden_sizes)))
      # Bernoulli logits under a bfloat16 policy: the last (largest) matmul in bfloat16 too,
      # its output cast to float32 (1.3x the examples/s at batch 1024 on AMX; the test ELBO
      # at equal epochs: docs/speed.md). Other likelihoods keep it in float32: a bfloat16 loc
      # (8 bits) is too coarse for a small learned scale.
      low_precision_head = (likelihood == "bernoulli"
                            and keras.config.dtype_policy().compute_dtype != "float32")
      layers += [keras.layers.Dense(int(np.prod(out_shape)),
                                    dtype=None if low_precision_head else "float32"),
                 keras.layers.Reshape(out_shape, dtype="float32")]
    else:
      height, width, channels = out_shape
      factor = 2 ** len(conv_filters)
      h0, w0 = math.ceil(height / factor), math.ceil(width / factor)
      layers += [keras.layers.Dense(h0 * w0 * conv_filters[-1], activation="relu"),
                 keras.layers.Reshape((h0, w0, conv_filters[-1]))]
      layers += [keras.layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu")
                 for f in reversed(conv_filters)]
      crop_h, crop_w = h0 * factor - height, w0 * factor - width
      if crop_h or crop_w:
        layers.append(keras.layers.Cropping2D(((crop_h // 2, crop_h - crop_h // 2),
                                               (crop_w // 2, crop_w - crop_w // 2))))
      layers.append(keras.layers.Conv2D(channels, 3, padding="same", dtype="float32"))
    return keras.Sequential(layers, name="net"), out_shape

  def call(self, z, training=False):
    batch_shape = tf.shape(z)[:-1]
    out = self.net(tf.reshape(z, [-1, self.latent_dim]), training=training)
    if self.returns_distribution:  # the user's p(x|z), batch [N]: back to z's batch shape
      return out if z.shape.rank == 2 else BroadcastingBatchReshape(out, batch_shape)
    out = tf.reshape(out, tf.concat([batch_shape, self.out_shape], axis=0))
    if self.likelihood_layer is not None:
      return self.likelihood_layer(out)
    ndims = len(self.image_shape)
    if self.likelihood == "bernoulli":
      return tfd.Independent(Bernoulli(logits=out, dtype=tf.float32), ndims)
    if self.likelihood == "continuous_bernoulli":
      return tfd.Independent(tfd.ContinuousBernoulli(logits=out), ndims)
    if self.likelihood == "normal_per_pixel":
      loc, raw_scale = tf.split(out, 2, axis=-1)
      return tfd.Independent(
          tfd.Normal(loc=loc, scale=tf.nn.softplus(raw_scale) + MIN_LIKELIHOOD_SCALE), ndims)
    if self.likelihood == "poisson":
      return tfd.Independent(tfd.Poisson(log_rate=out), ndims)
    scale = self.scale()
    if self.likelihood == "negative_binomial":  # mean exp(out), dispersion scale
      return tfd.Independent(tfd.NegativeBinomial.experimental_from_mean_dispersion(
          tf.exp(out), scale), ndims)
    family = tfd.Laplace if self.likelihood == "laplace" else tfd.Normal
    return tfd.Independent(family(loc=out, scale=scale), ndims)

  def scale(self):
    """The shared scale sigma of normal/laplace (the dispersion of negative_binomial): float32
    [] for images, [D] for vectors, in the data's units."""
    return tf.nn.softplus(self.raw_scale) + MIN_LIKELIHOOD_SCALE

  def squared_error(self, p_x, x):
    """The squared error of x to the decoder mean that a calibrated scale is fitted to, or
    None for decoders without one.

    Args:
      p_x: this decoder's output, batch [..., B], event image_shape.
      x: float32 [B, *image_shape].

    Returns:
      float32 [B, *S], held fixed (stop_gradient): each example's mean squared error over its
      pixels (S = [], images) or per feature (S = [D], vectors), averaged over the leading
      sample axes [...], in the data's units squared; None where not `calibrated`.
    """
    if not self.calibrated:
      return None
    loc = p_x.distribution.loc  # [..., B, *image_shape]
    squared = tf.square(tf.cast(x, loc.dtype) - loc)
    if len(self.image_shape) == 3:
      squared = tf.reduce_mean(squared, axis=[-3, -2, -1])  # [..., B]
    lead = squared.shape.rank - 1 - (1 if len(self.image_shape) == 1 else 0)
    return tf.stop_gradient(
        tf.reduce_mean(squared, axis=list(range(lead))) if lead else squared)  # [B, *S]

  def fit_scale(self, p_x, x):
    """p(x|z) with its shared scale replaced by the batch's optimal one (the sigma-VAE's
    "optimal sigma", Rybkin et al. 2021, sec. 4): sigma^2 = the mean squared error of x to the
    decoder mean over the samples, examples and pixels sharing a scale. The train loss uses it
    (held fixed by stop_gradient: at the batch's optimum the loss's derivative in sigma is 0, so
    the network's gradient is that of the exact minimization over sigma). raw_scale gets a zero
    gradient (it stays trainable, so optimizer slots keep their positions) and is set by
    `update_scale` and `set_scale`.

    Args:
      p_x: this decoder's output, batch [..., B], event image_shape.
      x: float32 [B, *image_shape].

    Returns:
      (p(x|z) with the fitted scale, the same batch and event; `squared_error(p_x, x)`).
      Decoders without a calibrated scale return (p_x, None).
    """
    squared_error = self.squared_error(p_x, x)
    if squared_error is None:
      return p_x, None
    variance = tf.reduce_mean(squared_error, axis=0)  # [*S]
    scale = (tf.sqrt(tf.maximum(variance, MIN_LIKELIHOOD_SCALE ** 2))
             + 0.0 * self.raw_scale)  # an exact zero gradient for raw_scale
    return (tfd.Independent(tfd.Normal(loc=p_x.distribution.loc, scale=scale),
                            len(self.image_shape)), squared_error)

  def set_scale(self, variance):
    """Stores sigma = sqrt(variance) (at least MIN_LIKELIHOOD_SCALE) as the shared scale that
    evaluation, sampling and the export use; cross-replica context.

    Args:
      variance: float32 [*S] ([] images, [D] vectors), in the data's units squared.
    """
    sigma = tf.sqrt(tf.maximum(tf.cast(variance, tf.float32), MIN_LIKELIHOOD_SCALE ** 2))
    self.raw_scale.assign(tfp.math.softplus_inverse(
        tf.maximum(sigma - MIN_LIKELIHOOD_SCALE, 1e-6)))

  def update_scale(self, variance, step):
    """Moves the stored scale towards a train step's fitted one; cross-replica context.

    sigma^2 <- d * sigma^2 + (1 - d) * variance, d = min(SCALE_DECAY, step / (step + 10)),
    so step 0 sets sigma^2 = variance.

    Args:
      variance: float32 [*S], the mean squared error of the step's global batch (`fit_scale`).
      step: int64 scalar, the step's index (0-based).
    """
    step = tf.cast(step, tf.float32)
    decay = tf.minimum(SCALE_DECAY, step / (step + 10.0))
    old = tf.square(self.scale())
    self.set_scale(decay * old + (1.0 - decay) * tf.maximum(variance, MIN_LIKELIHOOD_SCALE ** 2))


class BroadcastingBatchReshape(tfd.BatchReshape):
  """tfd.BatchReshape whose log_prob broadcasts x against the batch shape, as the families'
  own likelihoods do: p(x|z) for z [L, B, D] takes x [B, ...] (tfd.BatchReshape refuses to)."""

  def _call_log_prob(self, value, name, **kwargs):  # before tfd.BatchReshape's shape check
    full = tf.concat([self.batch_shape_tensor(), self.event_shape_tensor()], axis=0)
    return super()._call_log_prob(tf.broadcast_to(value, full), name, **kwargs)
