"""Model families. Each has the same interface: built from a Config, exposes `encoder`,
`decoder`, `prior()` (None for deterministic autoencoders), `trainable_variables`, and
`losses(batch, seed, step, training)` returning a dict of per-example Tensors [B] that includes
"loss" (the quantity minimized) and "distortion" (-log p(x|z), nats)."""

from tfvae.models import ae
from tfvae.models import vae

MODELS = {
    "vae": vae.VAE,
    "ae": ae.AE,
    "sparse_ae": ae.SparseAE,
    "denoising_ae": ae.DenoisingAE,
    "contractive_ae": ae.ContractiveAE,
}


def build(config):
  """Builds the model named by `config.model` (image_shape must be resolved)."""
  return MODELS[config.model](config)


def is_generative(model):
  """True when the model has a prior p(z): an ELBO, importance sampling and prior samples exist."""
  return model.prior() is not None
