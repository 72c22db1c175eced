"""A Conditional model with its condition fixed (`Conditioned`): an unconditional
LatentVariableModel on which evaluation, export and TrainedModel compute the conditional ELBO,
the importance-weighted bound, active units and the per-dimension rate given c
(tfvae/models/interface.py `Conditional.given`; the cvae, tfvae/models/cvae.py).
"""

import tensorflow as tf

from tfvae import networks
from tfvae import noise
from tfvae import objectives
from tfvae.models import base
from tfvae.models import interface

tfd = networks.tfd


class Conditioned(interface.LatentVariableModel):
  """A Conditional model (a CVAE) with the condition c float32 [B, C] fixed (row i of x goes with row i of c): an
  unconditional LatentVariableModel with q(z|x, c) as its posterior and p(z|c) (batch [B]) as
  its prior, so the ELBO, the importance-weighted bound (evaluation.evaluator.iwae_bound,
  importance sampling with the conditional prior), active units and the per-dimension rate are
  those given c."""

  def __init__(self, model, c):
    super().__init__(name="conditioned")
    self.model, self.config = model, model.config
    self.c = tf.convert_to_tensor(c, tf.float32)

  def posterior(self, x, training=False):
    """q(z|x, c): batch [B], event [latent_dim]."""
    return self.model.encoder(x, self.c, training=training)

  def prior(self, training=False):
    """p(z|c): batch [B], event [latent_dim]."""
    return self.model.conditional_prior(self.c, training=training)

  def decode(self, z, y_onehot=None, training=False):
    """p(x|z, c) for z [..., B, D]: batch [..., B]."""
    del y_onehot
    return self.model.decode(z, self.c, training=training)

  def beta(self, step):
    return self.model.beta(step)

  def reconstruct(self, x):
    return self.reconstruct_from(x, self.posterior(x))

  def reconstruct_from(self, x, q_z):
    del x
    return self.decode(q_z.mean()).mean()

  def rate_per_dimension(self, q_z, seed, index=None):
    """KL(q(z_d|x, c) || p(z_d|c)), float32 [B, D] nats (analytic; sums to the rate); None
    for a user's p(z|c) that is not a MultivariateNormalDiag."""
    del seed, index
    p_z = self.prior()
    if not isinstance(p_z, tfd.MultivariateNormalDiag):
      return None
    return objectives.rate_per_dimension(q_z, p_z)

  def log_weight_terms(self, x, q_z, eps, training=False):
    """{"z" [L, B, D], "log_likelihood" log p(x|z, c), "log_prior" log p(z|c),
    "log_posterior" log q(z|x, c): float32 [L, B]} at z = loc + scale * eps, eps [L, B, D]
    (and "mean_squared_error" [B, *S] for a calibrated decoder)."""
    z, log_q = objectives.reparameterize(q_z, eps)
    fitted = base.log_likelihood(self.model.decoder, self.decode(z, training=training), x,
                                 training)
    return {"z": z, **fitted, "log_prior": self.prior(training).log_prob(z),
            "log_posterior": log_q}

  def elbo(self, x, seed):
    """{"elbo", "rate", "distortion"} [B], nats, given c, with num_samples samples."""
    terms, _ = self.losses_and_posterior({"image": x}, seed, tf.constant(0, tf.int64), False)
    return {k: terms[k] for k in ("elbo", "rate", "distortion")}

  def losses_and_posterior(self, batch, seed, step, training=True):
    """The CVAE's per-example terms given c (see CVAE.losses_and_posterior), and q(z|x, c)."""
    x = batch["image"]
    q_z = self.posterior(x, training)
    eps = noise.replica_normal_noise(self.config.model.num_samples, tf.shape(x)[0],
                                     self.noise_dim, seed, batch.get("index"))
    parts = self.log_weight_terms(x, q_z, eps, training)
    analytic = self.model.has_analytic_rate  # else the Monte Carlo estimate on the same z
    terms = objectives.bound_terms(
        parts, objectives.rate(q_z, self.prior(training)) if analytic else None)
    if "mean_squared_error" in parts:
      terms["mean_squared_error"] = parts["mean_squared_error"]
    beta = self.beta(step) if training else 1.0
    terms["loss"] = terms["distortion"] + beta * terms["rate"]
    return terms, q_z
