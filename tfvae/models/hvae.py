"""The two-level hierarchical VAE of Tomczak & Welling (2018, section 4): z2 -> z1 -> x.

Generative model p(x|z1, z2) p(z1|z2) p(z2); inference q(z1|x, z2) q(z2|x). p(z2) is --prior
(standard normal, VampPrior on the pseudo-inputs' q(z2|u), or a mixture); z1 and z2 both have
--latent_dim dimensions. Every conditional is a diagonal Gaussian (--posterior_scale) or the
--likelihood. The importance weight is exact in both layers:

  log w = log p(x|z1, z2) + log p(z1|z2) + log p(z2) - log q(z1|x, z2) - log q(z2|x),

and the rate is its Monte Carlo estimate, E_q[log q(z1, z2|x) - log p(z1, z2)].

What the shared interface means here: `posterior(x)` (and the exported `encode`) is q(z2|x),
the top layer; a code z [B, D] given to `decode` is z2, decoded at z1 = E[p(z1|z2)];
`reconstruct(x)` decodes z2 = E[q(z2|x)] and z1 = E[q(z1|x, z2)]; `sample` draws
z2 ~ p(z2), z1 ~ p(z1|z2), x ~ p(x|z1, z2), and `generate` the same from z2 drawn by a sampler
fitted to the top layer's codes (tfvae/samplers). The decoder reads [z1, z2] concatenated.

User networks (tfvae/user_networks.py), per level where they fit: the encoder is q(z2|x)'s
(features [B, F] or the distribution itself), the decoder reads [z1, z2] [B, 2 * latent_dim],
the likelihood is p(x|z1, z2)'s and the prior is p(z2). q(z1|x, z2) and p(z1|z2) are always
tfvae's (--hidden_sizes' last width, --architecture's dense layers).

Reference:
  Tomczak & Welling, "VAE with a VampPrior", AISTATS 2018 (the two-level model, figure 1 and
  section 4; their code's GatedDense layers: --architecture=gated_mlp).
"""

import dataclasses

import keras
import tensorflow as tf

from tfvae import networks
from tfvae import objectives
from tfvae.errors import ConfigError
from tfvae.models import base
from tfvae.models import vae


@dataclasses.dataclass(frozen=True)
class HVAEConfig(vae.VAEConfig):
  """The VAE's knobs, for both layers (--latent_dim each); --prior and --posterior are the top
  layer's, whose posterior is diagonal.

  Raises:
    ConfigError: naming the flag, for a value that cannot run.
  """
  family = "hvae"

  def accepts(self):
    """As the VAE's (the encoder q(z2|x), the prior p(z2)); the decoder reads [z1, z2]."""
    return dataclasses.replace(super().accepts(), decoder_input=("z1", "z2"))

  def network_knobs_read_elsewhere(self):
    """q(z1|x, z2) and p(z1|z2) read --architecture and --hidden_sizes."""
    return super().network_knobs_read_elsewhere() | {"architecture", "hidden_sizes"}

  def check(self):
    super().check()
    if self.posterior != "diagonal" or self.training_objective == "iwae_dreg":
      raise ConfigError("--model=hvae supports --posterior=diagonal and --training_objective="
                        "elbo or iwae only.")


class _Conditional(keras.Model):
  """inputs [..., F_i] (one or two of them, joined) -> a diagonal Gaussian over [D]: each input
  through its own dense stack, the concatenation through one more layer (the VampPrior code's
  q(z1|x, z2) and p(z1|z2))."""

  def __init__(self, input_dims, latent_dim, architecture, width, posterior_scale, **kwargs):
    super().__init__(**kwargs)
    self.posterior_scale = posterior_scale
    self.num_inputs = len(input_dims)
    for i, dim in enumerate(input_dims):
      setattr(self, f"input_{i}", keras.Sequential(
          [keras.Input((dim,))] + networks.dense_stack(architecture, [width]), name=f"input_{i}"))
    self.joint = keras.Sequential(
        [keras.Input((width * len(input_dims),))] + networks.dense_stack(architecture, [width]),
        name="joint")
    self.head = keras.layers.Dense(2 * latent_dim, dtype="float32", name="params")

  def call(self, inputs, training=False):
    """inputs: a list of float32 [..., F_i] (batch shapes broadcast) -> batch [...]."""
    shape = tf.shape(inputs[-1])[:-1]
    hidden = []
    for i, x in enumerate(inputs):
      h = getattr(self, f"input_{i}")(tf.reshape(x, [-1, x.shape[-1]]), training=training)
      hidden.append(tf.reshape(h, tf.concat([tf.shape(x)[:-1], [h.shape[-1]]], 0)))
    hidden = [tf.broadcast_to(h, tf.concat([shape, [h.shape[-1]]], 0)) for h in hidden]
    joined = tf.concat(hidden, -1)
    out = self.joint(tf.reshape(joined, [-1, joined.shape[-1]]), training=training)
    params = self.head(out)
    params = tf.reshape(params, tf.concat([shape, [params.shape[-1]]], 0))
    return networks.diagonal_gaussian(params, self.posterior_scale)


class HVAE(vae.VAE):
  """Two latent layers, see the module docstring. Args as VAE (an HVAEConfig model section);
  `parts` (tfvae.user_networks.Parts): the user's q(z2|x) encoder, [z1, z2] decoder,
  likelihood and p(z2) prior."""

  config_class = HVAEConfig

  def __init__(self, config, parts=None):
    super().__init__(config, name="hvae", parts=parts)
    d, width = config.model.latent_dim, config.model.hidden_sizes[-1]
    mlp = config.model.architecture if config.model.architecture != "conv" else "mlp"
    pixels = 1
    for n in config.data.image_shape:
      pixels *= n
    self._pixels = pixels
    # q(z1|x, z2): x flattened (conv: the encoder's own body is not shared).
    self.q_z1 = _Conditional([pixels, d], d, mlp, width, config.model.posterior_scale, name="q_z1")
    self.p_z1 = _Conditional([d], d, mlp, width, config.model.posterior_scale, name="p_z1")
    self.q_z1([tf.zeros([1, pixels]), tf.zeros([1, d])])
    self.p_z1([tf.zeros([1, d])])

  def _parts(self):
    return super()._parts() + [self.q_z1, self.p_z1]

  @property
  def noise_dim(self):
    """2 D: the first D numbers draw z2, the last D z1."""
    return 2 * self.config.model.latent_dim

  def rate_closed_form(self, q_z):
    del q_z
    return None  # the rate of z1 has no closed form

  def _flat(self, x):
    return tf.reshape(x, [-1, self._pixels])

  def log_weight_terms(self, x, q_z, eps, training=False):
    """As VAE.log_weight_terms, over both layers; "z" is z2 [L, B, D]."""
    d = self.config.model.latent_dim
    z2, log_q2 = objectives.reparameterize(q_z, eps[..., :d])
    q_z1 = self.q_z1([self._flat(x), z2], training=training)  # batch [L, B]
    z1 = q_z1.bijector.forward(eps[..., d:])
    p_z1 = self.p_z1([z2], training=training)
    p_x = self.decoder(tf.concat([z1, z2], -1), training=training)
    return {"z": z2, **base.log_likelihood(self.decoder, p_x, x, training),
            "log_prior": p_z1.log_prob(z1) + self.prior().log_prob(z2),
            "log_posterior": q_z1.log_prob(z1) + log_q2}

  def decode(self, z, y_onehot=None):
    """p(x | z1 = E[p(z1|z2)], z2 = z) for top codes z [..., D]."""
    del y_onehot
    return self.decoder(tf.concat([self.p_z1([z]).mean(), z], -1))

  def reconstruct_from(self, x, q_z):
    z2 = q_z.mean()
    z1 = self.q_z1([self._flat(x), z2]).mean()
    return self.decoder(tf.concat([z1, z2], -1)).mean()

  def generate(self, z, seed):
    """z2 = z [n, D] (codes a fitted sampler drew), z1 ~ p(z1|z2), x ~ p(x|z1, z2); the
    stateless seed int32 [2] split in two (z1, x)."""
    z1_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    z1 = self.p_z1([z]).sample(seed=z1_seed)
    p_x = self.decoder(tf.concat([z1, z], -1))
    return {"mean": p_x.mean(), "sample": tf.cast(p_x.sample(seed=x_seed), tf.float32)}

  def sample(self, n, seed, label=None):
    """z2 ~ p(z2), z1 ~ p(z1|z2), x ~ p(x|z1, z2); as VAE.sample (seed int32 [2], stateless)."""
    del label
    z2_seed, z1_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    z2 = self.prior().sample(n, seed=z2_seed)
    z1 = self.p_z1([z2]).sample(seed=z1_seed)
    p_x = self.decoder(tf.concat([z1, z2], -1))
    return {"mean": p_x.mean(), "sample": tf.cast(p_x.sample(seed=x_seed), tf.float32)}
