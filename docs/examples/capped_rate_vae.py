"""A new model family in one file: the VAE whose loss weights only the rate above a floor,
distortion + beta * max(rate - rate_floor, 0) per example (the free-bits idea of Kingma et
al. 2016 applied to the whole code rather than per dimension). An example of what a family
file holds; tests/test_new_family.py registers it with one line and trains, resumes and loads
it from Python and the command line.

To add it to tfvae: copy it into tfvae/models/ (as capped_rate_vae.py) and add one line to
MODELS in tfvae/models/__init__.py:

    "capped_rate_vae": capped_rate_vae.CappedRateVAE,
"""

import dataclasses

import tensorflow as tf

from tfvae import config_fields
from tfvae.config_fields import MODEL, field
from tfvae.errors import ConfigError
from tfvae.models import vae


@dataclasses.dataclass(frozen=True)
class CappedRateVAEConfig(vae.VAEConfig):
  """The VAE's knobs and the rate below which the rate is free.

  Raises:
    ConfigError: naming the flag, for a value that cannot run.
  """
  family = "capped_rate_vae"
  rate_floor: float = field(
      2.0, MODEL, "Nats per example of the rate that the loss does not penalize.")

  def check(self):
    super().check()
    config_fields.check_at_least(self, 0, "rate_floor")
    if self.training_objective != "elbo":
      raise ConfigError(f"--model={self.family} trains the ELBO: --training_objective="
                        f"{self.training_objective} is not supported.")


class CappedRateVAE(vae.VAE):
  """A VAE whose training loss is distortion + beta * max(rate - rate_floor, 0), per example
  (float32 [B], nats); evaluation reports the ELBO as every VAE."""

  config_class = CappedRateVAEConfig

  def losses_and_posterior(self, batch, seed, step, training=True):
    terms, q_z = super().losses_and_posterior(batch, seed, step, training)
    if training:
      excess = tf.maximum(terms["rate"] - self.config.model.rate_floor, 0.0)
      terms["loss"] = terms["distortion"] + self.beta(step) * excess
    return terms, q_z
