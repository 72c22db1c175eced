"""Model families. Each has the same interface: built from a Config, exposes `encoder`,
`decoder`, `prior()` (None for deterministic autoencoders), `trainable_variables`, and
`losses(batch, seed, step, training)` returning a dict of per-example Tensors [B] that includes
"loss" (the quantity minimized) and "distortion" (-log p(x|z), nats).
`losses_and_posterior(...)` returns those terms and the q(z|x) they used (None for M2), so a
caller encodes once; `posterior(x)` (None for M2), `reconstruct(x)` and, with a prior,
`sample(n, seed)` -> {"mean", "sample"} are what evaluation, figures, summaries and the export
ask of a model.

Models with a classifier (pc_vae, m2) also expose `classify(x) -> tfd.Categorical` (batch [B])
and, when not training, a per-example "accuracy" term (1 for a correct prediction, 0 for a wrong
one or an unknown label; m2 also "generative_accuracy", of argmax_y ELBO(x, y)); the Evaluator
divides every term named *accuracy by the number of labeled examples."""

from tfvae.models import ae
from tfvae.models import m2
from tfvae.models import pc_vae
from tfvae.models import vae

MODELS = {
    "vae": vae.VAE,
    "ae": ae.AE,
    "sparse_ae": ae.SparseAE,
    "denoising_ae": ae.DenoisingAE,
    "contractive_ae": ae.ContractiveAE,
    "pc_vae": pc_vae.PCVAE,
    "m2": m2.M2,
}


def build(config):
  """Builds the model named by `config.model` (image_shape must be resolved), with the Keras
  dtype policy `config.dtype_policy` (made global: Keras reads it when layers are created)."""
  import keras  # pylint: disable=import-outside-toplevel
  keras.config.set_dtype_policy(config.dtype_policy)
  return MODELS[config.model](config)


def is_generative(model):
  """True when the model has a prior p(z): an ELBO, importance sampling and prior samples exist."""
  return model.prior() is not None
