"""The encoders and the network bodies tfvae builds: Keras 3 models whose `call()` returns a
`tfp.distributions` object where they end in one.

Encoder: x float32 [B, H, W, C] -> q(z|x) = MultivariateNormalDiag, batch [B], event [latent_dim]
(ConditionalEncoder: q(z|x, c)); Classifier: x -> q(y|x); the prior N(0, I). The decoder
z -> p(x|z) and its likelihoods are tfvae/decoders.py, on the same bodies. Both are built with `architecture="mlp"` (Flatten + Dense stack), `"gated_mlp"` (Flatten +
GatedDense stack) or `"conv"` (stride-2 3x3 convs;
the decoder mirrors them with transposed convs and crops to H x W, so any H, W works: 8x8, 28x28,
32x32, ...). Distribution parameters are float32 whatever the compute dtype.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

# A lower bound that keeps log-densities finite on ordinary data (the decoder's:
# decoders.MIN_LIKELIHOOD_SCALE).
MIN_POSTERIOR_SCALE = 1e-4


def prior(latent_dim):
  """p(z) = N(0, I) as a MultivariateNormalDiag, event shape [latent_dim]."""
  return tfd.MultivariateNormalDiag(loc=tf.zeros([latent_dim]), scale_diag=tf.ones([latent_dim]))


# --posterior_scale=clamped_log_variance: log sigma^2 is clipped to this range (the hardtanh of
# the VampPrior code, Tomczak & Welling 2018).
LOG_VARIANCE_RANGE = (-6.0, 2.0)


@keras.saving.register_keras_serializable("tfvae")
class GatedDense(keras.layers.Layer):
  """h = (x W + b) * sigmoid(x V + c): a gated linear unit (Dauphin et al., "Language modeling
  with gated convolutional networks", ICML 2017), the GatedDense layer of the VampPrior code
  (Tomczak & Welling, AISTATS 2018), which uses no other activation.

  Args:
    units: output width.

  Input [..., F] -> output [..., units].
  """

  def __init__(self, units, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.linear = keras.layers.Dense(units, name="linear")
    self.gate = keras.layers.Dense(units, activation="sigmoid", name="gate")

  def build(self, input_shape):
    self.linear.build(input_shape)
    self.gate.build(input_shape)

  def call(self, x):
    return self.linear(x) * self.gate(x)

  def compute_output_shape(self, input_shape):
    return (*input_shape[:-1], self.units)

  def get_config(self):
    return {**super().get_config(), "units": self.units}


def dense_stack(architecture, sizes):
  """Dense layers of the given widths: ReLU Dense for mlp (and conv's dense parts), GatedDense
  for gated_mlp."""
  if architecture == "gated_mlp":
    return [GatedDense(h) for h in sizes]
  return [keras.layers.Dense(h, activation="relu") for h in sizes]


def _conv_body(conv_filters):
  return [keras.layers.Conv2D(f, 3, strides=2, padding="same", activation="relu")
          for f in conv_filters] + [keras.layers.Flatten()]


def image_body(architecture, hidden_sizes, conv_filters):
  """The encoder's body as a list of Keras layers: x [B, H, W, C] -> features [B, F]."""
  if architecture == "conv":
    return _conv_body(conv_filters)
  return [keras.layers.Flatten()] + dense_stack(architecture, hidden_sizes)


def diagonal_gaussian(params, posterior_scale="softplus"):
  """MultivariateNormalDiag from params [..., 2 D] = (loc, raw scale) on the last axis.

  posterior_scale="softplus": scale = softplus(raw) + MIN_POSTERIOR_SCALE;
  "clamped_log_variance": raw is log sigma^2, clipped to LOG_VARIANCE_RANGE (zero gradient
  outside it), scale = exp(raw / 2).
  """
  loc, raw = tf.split(params, 2, axis=-1)
  if posterior_scale == "clamped_log_variance":
    scale = tf.exp(0.5 * tf.clip_by_value(raw, *LOG_VARIANCE_RANGE))
  else:
    scale = tf.nn.softplus(raw) + MIN_POSTERIOR_SCALE
  return tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)


class Encoder(keras.Model):
  """x [B, H, W, C] -> q(z|x), batch [B], event [latent_dim].

  stochastic=True: MultivariateNormalDiag (`diagonal_gaussian` with `posterior_scale`); with
  num_flows > 0 that Gaussian pushed through an inverse autoregressive flow conditioned on the
  body's features (tfvae.flows.FlowPosterior).
  stochastic=False (deterministic autoencoders): VectorDeterministic(h), a point mass at the code
  h; its mean() is h and its stddev() is 0, so code that reads posterior means works unchanged.

  body: optional Keras model x [B, H, W, C] -> features [B, F] (replaces the built body; the
  head above is added) or -> a tfd.Distribution q(z|x) (used as it is, no head):
  tfvae/network_checks.py checks it first.
  """

  def __init__(self, image_shape, latent_dim, architecture="mlp", hidden_sizes=(256, 128),
               conv_filters=(32, 64), stochastic=True, posterior_scale="softplus", num_flows=0,
               body=None, **kwargs):
    super().__init__(**kwargs)
    self.image_shape = tuple(image_shape)
    self.latent_dim = latent_dim
    self.stochastic = stochastic
    self.posterior_scale = posterior_scale
    if body is None:
      body = keras.Sequential([keras.Input(self.image_shape)]
                              + image_body(architecture, hidden_sizes, conv_filters), name="body")
    self.body = body
    self.returns_distribution = isinstance(body(tf.zeros([1, *self.image_shape])),
                                           tfd.Distribution)
    self.head = None
    if not self.returns_distribution:
      self.head = keras.layers.Dense((2 if stochastic else 1) * latent_dim, dtype="float32",
                                     name="posterior_params" if stochastic else "code")
    self.flow = None
    if num_flows:
      from tfvae import flows  # pylint: disable=import-outside-toplevel
      self.flow = flows.InverseAutoregressiveFlow(latent_dim, hidden_sizes, num_flows,
                                                  name="flow")

  def gaussian(self, x, training=False):
    """The diagonal Gaussian part of q(z|x) (all of it without a flow): batch [B], event [D];
    a user body's own distribution where it returns one."""
    if self.returns_distribution:
      return self.body(x, training=training)
    return diagonal_gaussian(self.head(self.body(x, training=training)), self.posterior_scale)

  def call(self, x, training=False):
    features = self.body(x, training=training)
    if self.returns_distribution:
      return features
    params = self.head(features)
    if not self.stochastic:
      return tfd.VectorDeterministic(loc=params)
    base = diagonal_gaussian(params, self.posterior_scale)
    if self.flow is None:
      return base
    return self.flow.posterior(base, tf.cast(features, tf.float32), training=training)


class Classifier(keras.Model):
  """inputs [B, ...] -> q(y|inputs) = Categorical(logits [B, num_classes]).

  For images (input_shape [H, W, C]) the body is the encoder's (MLP or conv) body; for a code
  (input_shape [D]) an MLP with the given hidden sizes. The logits are float32.
  net: optional Keras model inputs -> logits [B, num_classes] (made a Categorical) or a
  tfd.Categorical (used as it is), in place of the body and head; tfvae/network_checks.py
  checks it first.
  """

  def __init__(self, input_shape, num_classes, architecture="mlp", hidden_sizes=(256, 128),
               conv_filters=(32, 64), net=None, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = num_classes
    self.net = net
    if net is not None:
      return
    body = (_conv_body(conv_filters) if architecture == "conv" and len(input_shape) == 3
            else [keras.layers.Flatten()] + dense_stack(
                "gated_mlp" if architecture == "gated_mlp" else "mlp", hidden_sizes))
    self.body = keras.Sequential([keras.Input(tuple(input_shape))] + body, name="body")
    self.head = keras.layers.Dense(num_classes, dtype="float32", name="logits")

  def call(self, inputs, training=False):
    if self.net is None:
      return tfd.Categorical(logits=self.head(self.body(inputs, training=training)))
    out = self.net(inputs, training=training)
    return out if isinstance(out, tfd.Distribution) else tfd.Categorical(
        logits=tf.cast(out, tf.float32))


class ConditionalEncoder(keras.Model):
  """(x [B, H, W, C], y one-hot [B, K]) -> q(z|x, y) = MultivariateNormalDiag, batch [B],
  event [latent_dim] (M2's encoder). The image body (MLP or conv, as `Encoder`; or `body`, the
  user's Keras model x -> features [B, F]) runs once per image (`features`); `posterior` joins
  its features with y through one hidden layer."""

  def __init__(self, image_shape, latent_dim, num_classes, architecture="mlp",
               hidden_sizes=(256, 128), conv_filters=(32, 64), body=None, **kwargs):
    super().__init__(**kwargs)
    self.image_shape = tuple(image_shape)
    self.latent_dim = latent_dim
    self.num_classes = num_classes
    if body is None:
      body = keras.Sequential([keras.Input(self.image_shape)]
                              + image_body(architecture, hidden_sizes, conv_filters), name="body")
    self.body = body
    self.joint = keras.layers.Dense(hidden_sizes[-1], activation="relu", name="joint")
    self.head = keras.layers.Dense(2 * latent_dim, dtype="float32", name="posterior_params")

  def features(self, x, training=False):
    """x [B, H, W, C] -> float [B, F]."""
    return self.body(x, training=training)

  def posterior(self, features, y_onehot, training=False):
    """features [..., F], y_onehot [..., K] -> q(z|x, y) with batch shape [...]."""
    hidden = self.joint(tf.concat([features, tf.cast(y_onehot, features.dtype)], -1),
                        training=training)
    loc, raw_scale = tf.split(self.head(hidden), 2, axis=-1)
    return tfd.MultivariateNormalDiag(
        loc=loc, scale_diag=tf.nn.softplus(raw_scale) + MIN_POSTERIOR_SCALE)

  def call(self, x, y_onehot, training=False):
    return self.posterior(self.features(x, training=training), y_onehot, training=training)
