"""The variational autoencoder (Kingma & Welling 2014) with a beta-weighted rate (Higgins 2017),
beta schedules (Bowman et al. 2016; Fu et al. 2019), free bits (Kingma et al. 2016), a choice
of prior (standard normal, VampPrior, Gaussian mixture: tfvae/priors.py), of posterior (diagonal
Gaussian or an inverse autoregressive flow: tfvae/flows.py) and of objective (ELBO, IWAE, IWAE
with DReG gradients: tfvae/objectives.py)."""

import dataclasses

import tensorflow as tf

from tfvae import config_fields
from tfvae import networks
from tfvae import noise
from tfvae import objectives
from tfvae import priors
from tfvae import user_networks
from tfvae.config_fields import MODEL, field
from tfvae.errors import ConfigError
from tfvae.models import base
from tfvae.models import interface

tfd = networks.tfd


@dataclasses.dataclass(frozen=True)
class VAEConfig(base.RateScheduleConfig, base.ModelConfig):
  """The VAE's knobs: posterior, prior, objective, the rate's weight and its schedule (also
  those of hvae and pc_vae, whose configs extend it).

  Raises:
    ConfigError: naming the flag, for a value that cannot run.
  """
  family = "vae"
  posterior_scale: str = field(
      "softplus", MODEL,
      "How the encoder outputs the posterior's scale: softplus (scale = softplus(.) + 1e-4) "
      "or clamped_log_variance (log sigma^2 clipped to [-6, 2], the VampPrior code's hardtanh)."
      ,
      choices=('softplus', 'clamped_log_variance'))
  posterior: str = field(
      "diagonal", MODEL,
      "q(z|x): diagonal (MultivariateNormalDiag) or iaf (that Gaussian pushed through "
      "--num_flows inverse autoregressive flows conditioned on the encoder's features, Kingma "
      "et al. 2016; log q(z|x) exact by the change of variables). vae and hvae (top layer).",
      choices=('diagonal', 'iaf'))
  num_flows: int = field(
      2, MODEL,
      "--posterior=iaf: number of autoregressive flow steps (MADE networks with the MLP's "
      "--hidden_sizes, the order reversed between steps).")
  prior: str = field(
      "standard_normal", MODEL,
      "p(z): standard_normal (N(0, I); the rate is the analytic KL), vampprior (the mixture of "
      "the posteriors of --num_pseudo_inputs learned pseudo-inputs, Tomczak & Welling 2018) or"
      " mixture (a learned mixture of --num_mixture_components diagonal Gaussians). With a "
      "mixture prior or an iaf posterior the rate is a Monte Carlo estimate (no closed form)."
      " vae and hvae (top layer).",
      choices=('standard_normal', 'vampprior', 'mixture'))
  num_pseudo_inputs: int = field(
      500, MODEL,
      "--prior=vampprior: K, the number of learned pseudo-inputs.")
  num_mixture_components: int = field(
      10, MODEL,
      "--prior=mixture: number of Gaussian components.")
  training_objective: str = field(
      "elbo", MODEL,
      "What a vae/hvae maximizes: elbo (the beta-weighted ELBO), iwae (the importance-weighted "
      "bound with --num_samples samples, Burda et al. 2016; beta weights log p(z) - log q(z|x)"
      " inside each weight) or iwae_dreg (the same bound with the doubly reparameterized "
      "encoder gradient of Tucker et al. 2019; diagonal posterior, prior not vampprior).",
      choices=('elbo', 'iwae', 'iwae_dreg'))
  free_bits: float = field(
      0.0, MODEL,
      "Free bits (Kingma et al. 2016), nats per latent dimension: each dimension's KL term in"
      " the loss is max(free_bits, KL_d), per example. 0: off. The reported rate and elbo are"
      " never clamped.")
  num_samples: int = field(
      1, MODEL,
      "Monte Carlo samples L of z per example: of the distortion term "
      "(--training_objective=elbo), or the K of the bound (--training_objective=iwae, "
      "iwae_dreg).")

  def check(self):
    super().check()
    config_fields.check_at_least(self, 1, "num_samples", "num_flows", "num_pseudo_inputs",
                                 "num_mixture_components")
    config_fields.check_at_least(self, 0, "free_bits")
    if self.training_objective == "iwae_dreg" and (
        self.posterior != "diagonal" or self.prior == "vampprior"):
      raise ConfigError("--training_objective=iwae_dreg needs --posterior=diagonal and a prior "
                        f"that does not share the encoder (got --posterior={self.posterior}, "
                        f"--prior={self.prior}); use --training_objective=iwae.")
    if self.training_objective == "elbo" and self.free_bits > 0 and (
        self.family != "vae" or self.prior != "standard_normal" or self.posterior != "diagonal"):
      raise ConfigError(f"--free_bits={self.free_bits} needs the analytic per-dimension KL: "
                        "--model=vae with --prior=standard_normal and --posterior=diagonal.")

  def accepts(self):
    """encoder, decoder (z -> p(x|z)), likelihood and prior; an iaf posterior needs the
    encoder's features."""
    return user_networks.Accepts(
        parts=("encoder", "decoder", "likelihood", "prior"),
        features_only=("--posterior=iaf has no features to condition the flow on"
                       if self.posterior == "iaf" else ""))

  def network_knobs_read_elsewhere(self):
    """hidden_sizes where an iaf posterior's MADE networks read it."""
    return frozenset({"hidden_sizes"} if self.posterior == "iaf" else ())

  def inactive(self, config):
    inactive = super().inactive(config)
    for name, flag, reads in (
        ("num_flows", "posterior", self.posterior == "iaf"),
        ("num_pseudo_inputs", "prior", self.prior == "vampprior"),
        ("num_mixture_components", "prior", self.prior == "mixture"),
        ("free_bits", "training_objective", self.training_objective == "elbo")):
      if not reads:
        inactive[name] = f"--{flag}={getattr(self, flag)}"
    return inactive


class VAE(base.EncoderDecoder, interface.LatentVariableModel):
  """Encoder q(z|x), decoder p(x|z) and prior p(z), with the shared model interface.

  Args:
    config: tfvae.config.Config whose model section is a VAEConfig; the model reads that and
      config.data.image_shape.

  The networks are built (weights created) in the constructor, so a checkpoint can be restored
  into a fresh instance straight away.
  """

  config_class = VAEConfig

  def __init__(self, config, name="vae", decoder_inputs=None, parts=None):
    super().__init__(config, stochastic=True, name=name, decoder_inputs=decoder_inputs,
                     parts=parts)
    if self.parts.prior is not None:
      self.prior_layer = priors.UserPrior(self.parts.prior, name="prior")
    else:
      self.prior_layer = priors.build(config, self.encoder.gaussian)
    self.has_analytic_rate = self._analytic_rate()

  def prior(self):
    return self.prior_layer.distribution()

  def _analytic_rate(self):
    """Whether KL(q(z|x) || p(z)) is analytic: a diagonal posterior and the standard normal
    prior, or user networks whose distributions have a registered tfd.kl_divergence."""
    c = self.config
    if not self.parts:
      return c.model.prior == "standard_normal" and c.model.posterior == "diagonal"
    if c.model.posterior != "diagonal" or (self.parts.prior is None and c.model.prior != "standard_normal"):
      return False
    try:
      tfd.kl_divergence(self.encoder(tf.zeros([1, *c.data.image_shape])), self.prior())
      return True
    except NotImplementedError:
      return False

  def rate_closed_form(self, q_z):
    """The analytic KL(q(z|x) || p(z)), float32 [B] nats, or None where there is none."""
    return objectives.rate(q_z, self.prior()) if self.has_analytic_rate else None

  def rate_per_dimension(self, q_z, seed, index=None):
    """KL(q(z_d|x) || p(z_d)) per latent dimension, float32 [B, D] nats, or None (a flow
    posterior has no tractable marginals). Analytic for the standard normal prior (sums to the
    rate); for mixture priors a one-sample Monte Carlo estimate against the prior's marginal
    p(z_d) (a 1-D mixture; these do not sum to the rate, which also counts the dependence
    between dimensions)."""
    if self.config.model.posterior != "diagonal" or not isinstance(
        q_z, tfd.MultivariateNormalDiag):
      return None
    p_z = self.prior()
    if self.parts.prior is not None and not isinstance(
        p_z, (tfd.MultivariateNormalDiag, tfd.MixtureSameFamily)):
      return None
    if self.has_analytic_rate:
      return objectives.rate_per_dimension(q_z, p_z)
    z = objectives.sample_latents(q_z, 1, seed, index)[0]  # [B, D]
    q_d = networks.tfd.Normal(q_z.mean(), q_z.stddev())
    return q_d.log_prob(z) - priors.marginals(p_z).log_prob(z)

  def log_weight_terms(self, x, q_z, eps, training=False):
    """The log-densities of x and L posterior samples drawn from noise eps [L, B, noise_dim]:
    {"z": [L, B, D], "log_likelihood": log p(x|z), "log_prior": log p(z), "log_posterior":
    log q(z|x) (exact, also for a flow): float32 [L, B], nats}. Their sum is the importance
    log-weight of `objectives.iwae_bound`."""
    z, log_q = objectives.reparameterize(q_z, eps)
    return {"z": z, **self._densities(x, z, training), "log_posterior": log_q}

  def elbo(self, x, seed):
    """{"elbo", "rate", "distortion"} [B], nats, with num_samples samples (the rate analytic
    where it can be, else Monte Carlo on the same samples)."""
    terms, _, _ = self.elbo_and_samples({"image": x}, seed, tf.constant(0, tf.int64), False)
    return {k: terms[k] for k in ("elbo", "rate", "distortion")}

  def sample(self, n, seed, label=None):
    """n draws from the model.

    Args:
      n: int32 scalar.
      seed: int32 Tensor [2], stateless: the same seed gives the same images. It is split in
        two, one for z ~ p(z) and one for x ~ p(x|z), so the two draws are independent.
      label: unused (these models are not label-conditional).

    Returns:
      {"mean": float32 [n, H, W, C] (the decoder mean at z), "sample": float32 [n, H, W, C]
      (pixels drawn from p(x|z))}. The exported `sample` signature returns the same.
    """
    del label
    z_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    p_x = self.decode(self.prior().sample(n, seed=z_seed))
    return {"mean": p_x.mean(), "sample": tf.cast(p_x.sample(seed=x_seed), tf.float32)}

  def beta(self, step):
    """The scheduled rate weight at `step`, float32 scalar Tensor (base.RateScheduleConfig)."""
    return self.config.model.scheduled_beta(step)

  def losses_and_posterior(self, batch, seed, step, training=True):
    """Per-example loss terms of one batch, and the posterior q(z|x) they were computed from.

    Args:
      batch: dict with "image": float32 [B, H, W, C] in [0, 1] (or vectors [B, D]), and
        optionally "index": int [B], the examples' indices in their split (evaluation batches
        carry it: each example's noise then depends on its index, not on the batch;
        noise.replica_normal_noise).
      seed: int32 Tensor [2], stateless seed for this step (folded per replica inside).
      step: int64 scalar Tensor, the global step (for beta schedules).
      training: bool; False uses beta = 1 and no free bits.

    Returns:
      (terms, q_z): terms is a dict of float32 Tensors [B], nats: loss (minimized; when not
      training, the negative ELBO for --training_objective=elbo and the negative IWAE bound with
      num_samples samples for iwae/iwae_dreg), elbo, rate, distortion (the true ELBO and KL,
      analytic or Monte Carlo, whatever the schedule and free bits); q_z is q(z|x), batch [B],
      event [latent_dim] (the encoder runs once per batch).
    """
    terms, q_z, _ = self.elbo_and_samples(batch, seed, step, training)
    return terms, q_z

  def elbo_and_samples(self, batch, seed, step, training=True):
    """As `losses_and_posterior`, plus the posterior samples z [num_samples, B, D] the
    distortion used (a variant reuses them instead of encoding and sampling again)."""
    x, c = batch["image"], self.config
    q_z = self.encoder(x, training=training)
    eps = noise.replica_normal_noise(c.model.num_samples, tf.shape(x)[0], self.noise_dim, seed,
                                     batch.get("index"))
    dreg = training and c.model.training_objective == "iwae_dreg"
    if dreg:  # z depends on q's parameters; log q's parameters are held fixed
      z = q_z.bijector.forward(eps)
      parts = {"z": z, **self._densities(x, z, training),
               "log_posterior": _stopped(q_z).log_prob(z)}
    else:
      parts = self.log_weight_terms(x, q_z, eps, training)
    terms = objectives.bound_terms(parts, self.rate_closed_form(q_z))
    if "mean_squared_error" in parts:
      terms["mean_squared_error"] = parts["mean_squared_error"]
    beta = self.beta(step) if training else 1.0
    if c.model.training_objective == "elbo":
      rate = terms["rate"]
      if training and c.model.free_bits > 0:
        rate = objectives.rate_with_free_bits(q_z, self.prior(), c.model.free_bits)
      terms["loss"] = terms["distortion"] + beta * rate
    elif dreg:
      detached = self._densities(x, tf.stop_gradient(parts["z"]), training)
      terms["loss"] = objectives.dreg_surrogate(parts, detached, beta)
    else:
      terms["loss"] = -objectives.iwae_bound(objectives.log_weights(parts, beta))
    return terms, q_z, parts["z"]

  def _densities(self, x, z, training):
    """log p(x|z) and log p(z), float32 [L, B], for z [L, B, D]; in training with a calibrated
    decoder p(x|z) has the batch's fitted scale, and "mean_squared_error" [B, *S] is added
    (decoders.Decoder.fit_scale)."""
    return {**base.log_likelihood(self.decoder, self.decoder(z, training=training), x, training),
            "log_prior": self.prior().log_prob(z)}


def _stopped(q_z):
  """q_z (a MultivariateNormalDiag) with its parameters held fixed (stop_gradient)."""
  return networks.tfd.MultivariateNormalDiag(tf.stop_gradient(q_z.loc),
                                             tf.stop_gradient(q_z.stddev()))
