"""Priors p(z) over codes [D]: the standard normal, the VampPrior and a learned Gaussian mixture;
the cvae's conditional priors p(z|c) (its own `ConditionalPriorNetwork`, a user's
`UserConditionalPrior`) and the user's p(z) layers.

Each prior is a Keras 3 layer (its variables train with the model); its `distribution()` is a
distribution with event shape [latent_dim] and batch shape [] (the mixtures a
DiagonalGaussianMixture, whose log_prob costs two matmuls).

References:
  Tomczak & Welling, "VAE with a VampPrior", AISTATS 2018 (eq. 9: p(z) = (1/K) sum_k
  q(z|u_k) with learned pseudo-inputs u_k; pseudo-inputs in [0, 1] through a hardtanh,
  initialized N(0.05, 0.01) for binary images, as their code does).
  Dilokthanakul et al. 2016 and Nalisnick et al. 2016 for Gaussian-mixture priors.
"""

import inspect

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import networks

tfd = tfp.distributions


class DiagonalGaussianMixture(tfd.MixtureSameFamily):
  """sum_k pi_k N(z; mu_k, diag(sigma_k^2)): tfd.MixtureSameFamily of a MultivariateNormalDiag
  with batch [K], whose log_prob is computed with two matmuls.

  MixtureSameFamily broadcasts z [N, D] against the components into [N, K, D] (at K = 500
  pseudo-inputs and N = 50000 codes of an importance-weighted evaluation: 4 GB per call);
  here sum_d (z_d - mu_kd)^2 / sigma_kd^2 = (z^2) S^T - 2 z (mu S)^T + sum_d mu_kd^2 S_kd with
  S = 1 / sigma^2, so memory and time are those of [N, D] x [D, K] products. The expanded
  square cancels badly where sigma is small (float32: 1e-3 nats at sigma = 0.05, nats at
  sigma = 1e-3), so it is computed in float64 (tested against a float64 direct sum with sigma
  down to 1e-4, the softplus posterior's floor); the result has the inputs' dtype.

  Args:
    logits: float Tensor [K], the mixture weights' logits.
    loc: float Tensor [K, D]; scale: float Tensor [K, D] (> 0).
  """

  def __init__(self, logits, loc, scale, name="DiagonalGaussianMixture"):
    parameters = dict(locals())
    super().__init__(tfd.Categorical(logits=logits),
                     tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale), name=name)
    self._parameters = parameters  # what copy() and batch slicing rebuild it from
    self._parts = (logits, loc, scale)

  @classmethod
  def _parameter_properties(cls, dtype, num_classes=None):
    del num_classes
    return dict(logits=tfp.util.ParameterProperties(event_ndims=1),
                loc=tfp.util.ParameterProperties(event_ndims=2),
                scale=tfp.util.ParameterProperties(event_ndims=2))

  def _log_prob(self, z):
    logits, loc, scale = self._parts
    dtype = loc.dtype
    z, loc, scale = (tf.cast(t, tf.float64) for t in (z, loc, scale))
    dim = tf.shape(loc)[-1]
    flat = tf.reshape(z, [-1, dim])  # [N, D]
    precision = tf.math.reciprocal(tf.square(scale))  # [K, D]
    squared = (tf.matmul(tf.square(flat), precision, transpose_b=True)
               - 2.0 * tf.matmul(flat, loc * precision, transpose_b=True)
               + tf.reduce_sum(tf.square(loc) * precision, axis=-1))  # [N, K]
    log_normalizer = (tf.reduce_sum(tf.math.log(scale), axis=-1)
                      + 0.5 * tf.cast(dim, tf.float64) * np.log(2.0 * np.pi))  # [K]
    log_joint = (-0.5 * tf.maximum(squared, 0.0) - log_normalizer
                 + tf.nn.log_softmax(tf.cast(logits, tf.float64)))
    log_prob = tf.reduce_logsumexp(log_joint, axis=-1)
    return tf.cast(tf.reshape(log_prob, tf.shape(z)[:-1]), dtype)


class StandardNormal(keras.layers.Layer):
  """p(z) = N(0, I), MultivariateNormalDiag with event [latent_dim]; no variables."""

  def __init__(self, latent_dim, **kwargs):
    super().__init__(**kwargs)
    self.latent_dim = latent_dim

  def distribution(self):
    return networks.prior(self.latent_dim)


class Mixture(keras.layers.Layer):
  """p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)) with learned pi (softmax of logits, initially
  uniform), mu_k (initially N(0, 1)) and sigma_k = softplus(.) + 1e-4 (initially 1).

  Returns tfd.MixtureSameFamily, batch [], event [latent_dim].
  """

  def __init__(self, latent_dim, num_components, **kwargs):
    super().__init__(**kwargs)
    self.latent_dim = latent_dim
    self.num_components = num_components
    self.logits = self.add_weight(name="logits", shape=(num_components,), initializer="zeros")
    self.locs = self.add_weight(name="locs", shape=(num_components, latent_dim),
                                initializer=keras.initializers.RandomNormal(0.0, 1.0))
    self.raw_scales = self.add_weight(
        name="raw_scales", shape=(num_components, latent_dim),
        initializer=keras.initializers.Constant(float(np.log(np.expm1(1.0)))))

  def distribution(self):
    return DiagonalGaussianMixture(
        tf.convert_to_tensor(self.logits), tf.convert_to_tensor(self.locs),
        tf.nn.softplus(self.raw_scales) + networks.MIN_POSTERIOR_SCALE)


class VampPrior(keras.layers.Layer):
  """p(z) = (1/K) sum_k q0(z|u_k): the mixture of the encoder's diagonal Gaussians at K learned
  pseudo-inputs u_k (Tomczak & Welling 2018). The encoder is the model's own (shared weights);
  with a flow posterior its Gaussian part q0 is used, so log p(z) stays exact and parallel.

  Args:
    gaussian: callable x [K, *input_shape] -> MultivariateNormalDiag, batch [K], event [D].
    input_shape: the shape of one input ([H, W, C] images in [0, 1], or [D] vectors).
    num_pseudo_inputs: K.

  Images: u = clip(w, 0, 1), w initialized N(0.05, 0.01) (the paper's hardtanh). Vectors
  (unbounded, often standardized features): u = w, initialized N(0, 0.01).
  """

  def __init__(self, gaussian, input_shape, num_pseudo_inputs, **kwargs):
    super().__init__(**kwargs)
    self._gaussian = gaussian
    self.images = len(input_shape) == 3
    self.pseudo_inputs_raw = self.add_weight(
        name="pseudo_inputs", shape=(num_pseudo_inputs, *input_shape),
        initializer=keras.initializers.RandomNormal(0.05 if self.images else 0.0, 0.01))

  def pseudo_inputs(self):
    """The K pseudo-inputs u_k, float32 [K, *input_shape]."""
    raw = tf.convert_to_tensor(self.pseudo_inputs_raw)
    return tf.clip_by_value(raw, 0.0, 1.0) if self.images else raw

  def distribution(self):
    components = self._gaussian(self.pseudo_inputs())
    loc, scale = components.mean(), components.stddev()  # [K, D]
    return DiagonalGaussianMixture(tf.zeros(tf.shape(loc)[:1]), loc, scale)


def call_user_prior(layer):
  """p(z) from a user's prior layer, called with no argument. Keras 3's Layer.__call__ fails
  on a call(self) that takes none (IndexError: it reads a first argument), so such a call()
  is run directly, once build() (where the layer may make its weights) has run; a call whose
  arguments all have defaults goes through Layer.__call__."""
  if inspect.signature(layer.call).parameters:
    return layer()
  if not layer.built:
    layer.build(None)
  return layer.call()


class UserPrior(keras.layers.Layer):
  """A user's prior layer (tfvae/user_networks.py): its call() returns p(z)."""

  def __init__(self, layer, **kwargs):
    super().__init__(**kwargs)
    self.layer = layer
    call_user_prior(layer)  # builds its weights now: a checkpoint restores into a fresh one

  def distribution(self):
    return call_user_prior(self.layer)


class ConditionalPriorNetwork(keras.Model):
  """The cvae's own learned conditional prior (Sohn et al. 2015): c [B, C] -> p(z|c) = MultivariateNormalDiag, batch [B], event [latent_dim]: ReLU Dense
  layers of `hidden_sizes`, then (loc, raw scale) as `networks.diagonal_gaussian` (softplus);
  the output layer starts at zero weights and the bias of N(0, I)."""

  def __init__(self, condition_dim, latent_dim, hidden_sizes=(64,), **kwargs):
    super().__init__(**kwargs)
    start = np.concatenate([np.zeros(latent_dim), np.full(latent_dim, np.log(np.expm1(1.0)))])
    self.net = keras.Sequential(
        [keras.Input((condition_dim,))] + networks.dense_stack("mlp", hidden_sizes)
        + [keras.layers.Dense(2 * latent_dim, dtype="float32", kernel_initializer="zeros",
                              bias_initializer=keras.initializers.Constant(start),
                              name="prior_params")], name="net")

  def call(self, c, training=False):
    return networks.diagonal_gaussian(self.net(c, training=training))


class UserConditionalPrior(keras.layers.Layer):
  """A user's conditional prior (cvae; tfvae/user_networks.py): c float32 [B, C] -> p(z|c),
  batch [B], event [latent_dim]: the `tfd.Distribution` the user's layer returns, used as it
  is, or from the parameters [B, 2 * latent_dim] it returns (loc, raw scale) the diagonal
  Gaussian of `networks.diagonal_gaussian` (scale softplus(raw) + MIN_POSTERIOR_SCALE), as
  tfvae's own prior network gives."""

  def __init__(self, layer, condition_dim, **kwargs):
    super().__init__(**kwargs)
    self.layer = layer
    self(tf.zeros([1, condition_dim]))  # built now: a checkpoint restores into its weights

  def call(self, c, training=False):
    out = self.layer(c, training=training)
    return out if isinstance(out, tfd.Distribution) else networks.diagonal_gaussian(
        tf.cast(out, tf.float32))


def build(config, gaussian, latent_dim=None):
  """The prior layer of `config.model.prior` for codes of `latent_dim` (default config.model.latent_dim).

  Args:
    config: Config (prior, latent_dim, num_pseudo_inputs, num_mixture_components, image_shape).
    gaussian: the encoder's diagonal Gaussian q0(z|x) as a callable (VampPrior only).
    latent_dim: optional D.
  """
  latent_dim = latent_dim or config.model.latent_dim
  if config.model.prior == "vampprior":
    return VampPrior(gaussian, config.data.image_shape, config.model.num_pseudo_inputs,
                     name="prior")
  if config.model.prior == "mixture":
    return Mixture(latent_dim, config.model.num_mixture_components, name="prior")
  return StandardNormal(latent_dim, name="prior")


def marginals(p_z):
  """The per-dimension marginals p(z_d) of a prior with diagonal components: a distribution
  with batch [D] (log_prob(z [..., D]) -> [..., D]): the Normal itself for a
  MultivariateNormalDiag, a 1-D mixture for a MixtureSameFamily of them."""
  if isinstance(p_z, tfd.MixtureSameFamily):
    comp = p_z.components_distribution
    loc, scale = tf.transpose(comp.mean()), tf.transpose(comp.stddev())  # [D, K]
    logits = p_z.mixture_distribution.logits_parameter()
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=tf.broadcast_to(logits, tf.shape(loc))), tfd.Normal(loc, scale))
  return tfd.Normal(p_z.mean(), p_z.stddev())
