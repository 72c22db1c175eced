"""Inverse autoregressive flow posteriors (Kingma et al. 2016) on TFP bijectors, with the masked
autoregressive network (MADE, Germain et al. 2015) written in Keras 3 layers.

`tfp.bijectors.AutoregressiveNetwork` is a tf_keras layer: inside a Keras 3 model its variables
are not trainable variables of the model (docs/platform.md), so the network here is Keras 3 and is
handed to `tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=...)`.

Shapes: z [..., D]; the context h [B, F] (the encoder's features) broadcasts against z [L, B, D].

References:
  Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling, "Improved variational inference with
  inverse autoregressive flow", NeurIPS 2016.
  Germain, Gregor, Murray & Larochelle, "MADE: Masked autoencoder for distribution estimation",
  ICML 2015.
  Papamakarios, Pavlakou & Murray, "Masked autoregressive flow for density estimation", NeurIPS
  2017 (the MAF/IAF duality TFP's bijector uses).
"""

import functools

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors
tfd = tfp.distributions

# sigma = sigmoid(s + GATE_BIAS) at the start: close to the identity (Kingma et al. 2016, sec. 4).
GATE_BIAS = 2.0


def made_masks(latent_dim, hidden_sizes):
  """The MADE masks (Germain et al. 2015, eq. 12-13) for the natural order 1..D.

  Input degree d = 1..D; hidden unit k of layer l gets degree 1 + (k mod (D - 1)) (so every
  degree 1..D-1 appears); the two outputs of dimension d have degree d. A unit connects to a
  previous unit of degree <= its own; an output of degree d to hidden units of degree < d.

  Returns:
    list of float32 numpy arrays: [D, H1], [H1, H2], ..., [Hn, 2 D] (outputs: shift params of
    dims 1..D, then scale params of dims 1..D). Output d depends only on z_1..z_{d-1}.
  """
  d = latent_dim
  degrees = [np.arange(1, d + 1)]
  for h in hidden_sizes:
    degrees.append(1 + np.arange(h) % max(1, d - 1))
  masks = [(deg_out[None, :] >= deg_in[:, None]).astype(np.float32)
           for deg_in, deg_out in zip(degrees[:-1], degrees[1:])]
  out = np.concatenate([np.arange(1, d + 1)] * 2)
  masks.append((out[None, :] > degrees[-1][:, None]).astype(np.float32))
  return masks


@keras.saving.register_keras_serializable("tfvae")
class MaskedDense(keras.layers.Layer):
  """y = x (W * M) + b with a fixed 0/1 mask M [in, out] (a MADE layer)."""

  def __init__(self, mask, activation=None, kernel_initializer="glorot_uniform", **kwargs):
    super().__init__(**kwargs)
    self.mask = np.asarray(mask, np.float32)
    self.activation = keras.activations.get(activation)
    self.kernel_initializer = keras.initializers.get(kernel_initializer)

  def build(self, input_shape):
    del input_shape
    self.kernel = self.add_weight(name="kernel", shape=self.mask.shape,
                                  initializer=self.kernel_initializer)
    self.bias = self.add_weight(name="bias", shape=self.mask.shape[1:], initializer="zeros")

  def call(self, x):
    kernel = self.kernel * tf.constant(self.mask, self.kernel.dtype)
    return self.activation(tf.matmul(x, kernel) + self.bias)

  def get_config(self):
    return {**super().get_config(), "mask": self.mask.tolist(),
            "activation": keras.activations.serialize(self.activation)}


class MADE(keras.layers.Layer):
  """(z [..., D], h [B, F]) -> (shift, log_scale) [..., D], autoregressive in z: output d
  depends on z_1..z_{d-1} and h only. The context enters the first hidden layer through an
  unmasked Dense (Kingma et al. 2016, sec. 4). log_scale = softplus(-(s + GATE_BIAS)) >= 0, so
  the inverse map (the IAF step) multiplies by sigma = sigmoid(s + GATE_BIAS) in (0, 1)."""

  def __init__(self, latent_dim, hidden_sizes, **kwargs):
    super().__init__(**kwargs)
    self.latent_dim = latent_dim
    masks = made_masks(latent_dim, hidden_sizes)
    # Named attributes, not a list: tf.train.Checkpoint does not see layers in lists
    # (docs/platform.md).
    self.num_hidden = len(hidden_sizes)
    for i, mask in enumerate(masks[:-1]):  # the first one's ReLU comes after the context
      setattr(self, f"hidden_{i}", MaskedDense(mask, activation="relu" if i else None,
                                               name=f"hidden_{i}"))
    self.context = keras.layers.Dense(hidden_sizes[0], use_bias=False, name="context")
    self.out = MaskedDense(masks[-1], kernel_initializer="zeros", name="out")

  def call(self, z, h):
    x = keras.activations.relu(self.hidden_0(z) + self.context(h))
    for i in range(1, self.num_hidden):
      x = getattr(self, f"hidden_{i}")(x)
    shift, raw = tf.split(self.out(x), 2, axis=-1)
    return shift, tf.nn.softplus(-(raw + GATE_BIAS))


class FlowPosterior(tfd.TransformedDistribution):
  """q(z|x): a diagonal Gaussian q0(z0|x) pushed through an invertible flow z = f(z0).

  log q(z|x) = log q0(z0|x) - log |det df/dz0| (change of variables). `log_prob(z)` of an
  arbitrary z inverts the flow (sequential over the D dimensions: exact but slow);
  `sample_from_noise(eps)` gives z with its log q in one parallel pass, which is what the
  objectives and the importance-weighted bound use. `mean()` is f(E[z0]), the flow at the base
  mean (E[z] has no closed form); the exported `encode` and the latent figures use it as the code.

  Args:
    base: MultivariateNormalDiag q0(z0|x), batch [B], event [D].
    flow: a tfb.Bijector on vectors [..., D].
  """

  def __init__(self, base, flow, name="FlowPosterior"):
    parameters = dict(locals())
    super().__init__(distribution=base, bijector=flow, name=name, parameters=parameters)

  @property
  def base(self):
    return self.distribution

  def sample_from_noise(self, eps):
    """z and log q(z|x) for standard normal noise eps [L, B, D] (reparameterized).

    Returns:
      (z float32 [L, B, D], log_q float32 [L, B], nats).
    """
    z0 = self.distribution.bijector.forward(eps)
    z = self.bijector.forward(z0)
    log_q = self.distribution.log_prob(z0) - self.bijector.forward_log_det_jacobian(
        z0, event_ndims=1)
    return z, log_q

  def _mean(self, **kwargs):
    del kwargs
    return self.bijector.forward(self.distribution.mean())


def _made_fn(made, h, z):
  return made(z, h)


class InverseAutoregressiveFlow(keras.layers.Layer):
  """num_flows IAF steps, each `tfb.Invert(tfb.MaskedAutoregressiveFlow(MADE))` (the fast,
  parallel direction for sampling: z_t = (z_{t-1} - shift(z_{t-1})) * sigma(z_{t-1})), with the
  order of the dimensions reversed between steps (Kingma et al. 2016, sec. 4).

  Args:
    latent_dim: D.
    hidden_sizes: widths of each MADE's hidden layers.
    num_flows: number of steps >= 1.
  """

  def __init__(self, latent_dim, hidden_sizes, num_flows, **kwargs):
    super().__init__(**kwargs)
    self.latent_dim = latent_dim
    self.num_flows = num_flows
    for i in range(num_flows):
      setattr(self, f"made_{i}", MADE(latent_dim, hidden_sizes, name=f"made_{i}"))

  def build(self, input_shape):
    del input_shape
    for i in range(self.num_flows):
      getattr(self, f"made_{i}")(tf.zeros([1, self.latent_dim]),
                                 tf.zeros([1, self._context_dim]))

  def bijector(self, h):
    """The flow z0 -> z for context h [B, F]: a tfb.Chain of the IAF steps and permutations."""
    steps = []
    reverse = tfb.Permute(list(reversed(range(self.latent_dim))))
    for i in range(self.num_flows):
      if i:
        steps.append(reverse)
      made = getattr(self, f"made_{i}")
      steps.append(tfb.Invert(tfb.MaskedAutoregressiveFlow(
          shift_and_log_scale_fn=functools.partial(_made_fn, made, h))))
    return tfb.Chain(list(reversed(steps)))  # Chain applies its last bijector first

  def posterior(self, base, h, training=False):
    """FlowPosterior(base, bijector(h)) for base q0(z0|x) (batch [B], event [D]), h [B, F]."""
    del training
    if not self.built:
      self._context_dim = h.shape[-1]
      self.build(None)
      self.built = True
    return FlowPosterior(base, self.bijector(h))
