"""What every encoder/decoder model shares: building both networks from a Config, and their
variables in a fixed order."""

import tensorflow as tf

from tfvae import networks


class EncoderDecoder(tf.Module):
  """An encoder x [B, H, W, C] (or vectors [B, D]) -> distribution over codes and a decoder
  codes -> p(x|z).

  Args:
    config: tfvae.config.Config; uses image_shape, latent_dim, architecture, hidden_sizes,
      conv_filters and likelihood.
    stochastic: True for q(z|x) = MultivariateNormalDiag, False for a point mass at the code.
    name: the module's name.

  Raises:
    ValueError: if config.image_shape is not [H, W, C] (images) or [D] (vectors).

  The networks are built (weights created) in the constructor, so a checkpoint can be restored
  into a fresh instance straight away.
  """

  def __init__(self, config, stochastic, name):
    super().__init__(name=name)
    if len(config.image_shape) not in (1, 3):
      raise ValueError(f"config.image_shape must be [H, W, C] or [D], got {config.image_shape}.")
    self.config = config
    sizes = dict(architecture=config.architecture, hidden_sizes=config.hidden_sizes,
                 conv_filters=config.conv_filters)
    self.encoder = networks.Encoder(config.image_shape, config.latent_dim, **sizes,
                                    stochastic=stochastic, name="encoder")
    self.decoder = networks.Decoder(config.image_shape, config.latent_dim, **sizes,
                                    likelihood=config.likelihood, name="decoder")
    self.encoder(tf.zeros([1, *config.image_shape]))
    self.decoder(tf.zeros([1, config.latent_dim]))

  def posterior(self, x):
    """q(z|x) (batch [B], event [latent_dim]) for x float32 [B, H, W, C]; a point mass at the
    code for deterministic autoencoders. Models whose posterior needs more than x (M2) return
    None, and the latent figures and diagnostics are skipped for them."""
    return self.encoder(x)

  def reconstruct(self, x):
    """The decoder mean at the posterior mean: float32 [B, H, W, C] for x [B, H, W, C]."""
    return self.decoder(self.encoder(x).mean()).mean()

  def sample(self, n, seed):
    """n draws from the generative model (models with a prior only).

    Args:
      n: int32 scalar.
      seed: int32 Tensor [2], stateless: the same seed gives the same images. It is split in
        two, one for z ~ p(z) and one for x ~ p(x|z), so the two draws are independent.

    Returns:
      {"mean": float32 [n, H, W, C] (the decoder mean at z), "sample": float32 [n, H, W, C]
      (pixels drawn from p(x|z))}. The exported `sample` signature returns the same.
    """
    z_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    p_x = self.decoder(self.prior().sample(n, seed=z_seed))
    return {"mean": p_x.mean(), "sample": tf.cast(p_x.sample(seed=x_seed), tf.float32)}

  def losses(self, batch, seed, step, training=True):
    """The per-example loss terms of `losses_and_posterior` (dict of float32 [B], nats)."""
    return self.losses_and_posterior(batch, seed, step, training)[0]

  def losses_and_posterior(self, batch, seed, step, training=True):
    """(terms, posterior): per-example loss terms (dict of float32 [B], nats; "loss" is
    minimized) and the distribution over codes the encoder gave for batch["image"] (batch [B],
    event [latent_dim]), computed with one encoder pass. Implemented by each family."""
    raise NotImplementedError

  @property
  def trainable_variables(self):
    """Encoder then decoder variables, in a fixed order (optimizer slots are stored by position)."""
    return list(self.encoder.trainable_variables) + list(self.decoder.trainable_variables)

  @property
  def variables(self):
    return list(self.encoder.variables) + list(self.decoder.variables)
