"""The variational autoencoder (Kingma & Welling 2014) with a beta-weighted rate (Higgins 2017),
beta schedules (Bowman et al. 2016; Fu et al. 2019) and free bits (Kingma et al. 2016)."""

from tfvae import networks
from tfvae import objectives
from tfvae.models import base


class VAE(base.EncoderDecoder):
  """Encoder q(z|x), decoder p(x|z) and prior p(z) = N(0, I), with the shared model interface.

  Args:
    config: tfvae.config.Config; uses image_shape, latent_dim, architecture, hidden_sizes,
      conv_filters, likelihood, beta, beta_schedule, warmup_steps, num_cycles, free_bits and
      num_samples.

  The networks are built (weights created) in the constructor, so a checkpoint can be restored
  into a fresh instance straight away.
  """

  def __init__(self, config):
    super().__init__(config, stochastic=True, name="vae")

  def prior(self):
    return networks.prior(self.config.latent_dim)

  def elbo(self, x, seed):
    """{"elbo", "rate", "distortion"} [B], nats (objectives.elbo_terms, num_samples samples)."""
    terms = objectives.elbo_terms(x, self.encoder(x), self.decoder, self.prior(),
                                  self.config.num_samples, seed)
    return {k: terms[k] for k in ("elbo", "rate", "distortion")}

  def beta(self, step):
    """The scheduled rate weight at `step`, float32 scalar Tensor (objectives.scheduled_beta)."""
    c = self.config
    return objectives.scheduled_beta(step, c.beta, c.beta_schedule, c.warmup_steps, c.num_cycles)

  def losses_and_posterior(self, batch, seed, step, training=True):
    """Per-example loss terms of one batch, and the posterior q(z|x) they were computed from.

    Args:
      batch: dict with "image": float32 [B, H, W, C] in [0, 1], and optionally "index": int
        [B], the examples' indices in their split (evaluation batches carry it: each example's
        noise then depends on its index, not on the batch; objectives.replica_normal_noise).
      seed: int32 Tensor [2], stateless seed for this step (folded per replica inside).
      step: int64 scalar Tensor, the global step (for beta schedules).
      training: bool; False uses beta = 1 and no free bits, so that `loss` is the negative ELBO.

    Returns:
      (terms, q_z): terms is a dict of float32 Tensors [B], nats: loss (minimized), elbo, rate,
      distortion (rate and elbo are the true KL and ELBO whatever the schedule and free bits);
      q_z is q(z|x), batch [B], event [latent_dim] (the encoder runs once per batch).
    """
    terms, q_z, _ = self.elbo_and_samples(batch, seed, step, training)
    return terms, q_z

  def elbo_and_samples(self, batch, seed, step, training=True):
    """As `losses_and_posterior`, plus the posterior samples z [num_samples, B, D] the
    distortion used (a variant reuses them instead of encoding and sampling again)."""
    x = batch["image"]
    q_z, p_z = self.encoder(x, training=training), self.prior()
    z = objectives.sample_latents(q_z, self.config.num_samples, seed, batch.get("index"))
    terms = objectives.elbo_terms_at(x, z, q_z, lambda z: self.decoder(z, training=training), p_z)
    if training:
      rate = terms["rate"]
      if self.config.free_bits > 0:
        rate = objectives.rate_with_free_bits(q_z, p_z, self.config.free_bits)
      terms["loss"] = terms["distortion"] + self.beta(step) * rate
    return terms, q_z, z
