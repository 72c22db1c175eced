"""Model families. Each has the same interface: built from a Config, exposes `encoder`,
`decoder`, `prior()`, `trainable_variables`, and `losses(batch, seed, step, training)` returning
a dict of per-example Tensors [B] in nats that includes "loss" (the quantity minimized)."""

from tfvae.models import vae

MODELS = {"vae": vae.VAE}


def build(config):
  """Builds the model named by `config.model` (image_shape must be resolved)."""
  return MODELS[config.model](config)
