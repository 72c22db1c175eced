"""What every sampler of codes is: its kind, the record stored with it (`info`), its variables
(what an export tracks) and `draw`, which turns a count and a stateless seed into images."""

from typing import Any

import tensorflow as tf


class Sampler:
  """Draws codes z [n, latent_dim] for a model's decoder.

  Attributes:
    kind: "standard", "gmm" or "two_stage" (the --sampler name).
    info: the JSON-able record of the fit (kind, options, step, latent_dim, ...) written to
      WORKDIR/sampler/sampler.json and to the export's assets.extra/tfvae.json.
    description: a few words for figures, e.g. "a 10-component full GMM of the codes".
  """
  kind = ""
  description = ""

  def __init__(self, info: dict[str, Any]):
    self.info = info

  @property
  def variables(self) -> list[tf.Variable]:
    """The tensors sampling reads, as variables (the export tracks them)."""
    return []

  def sample_codes(self, n: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """float32 Tensor [n, latent_dim] of codes; n int32 [], seed int32 [2] (stateless)."""
    raise NotImplementedError

  def draw(self, model: Any, n: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
    """{"mean", "sample"}: float32 [n, *image_shape], decoded codes of this sampler.

    The seed is split in two as the models' own `sample` splits it: the first half draws the
    codes (`sample_codes`), the second the images (`model.generate`: x ~ p(x|z); for hvae,
    z1 ~ p(z1|z2) first). TensorFlow ops only: it runs eagerly and inside the export.

    Args:
      model: a tfvae model (tfvae/models/interface.py Model).
      n: int32 scalar, the number of draws.
      seed: int32 Tensor [2], stateless: the same seed gives the same images.
    """
    z_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    return model.generate(self.sample_codes(n, z_seed), x_seed)


class Standard(Sampler):
  """The model's prior p(z): `draw` is the model's own `sample` (what tfvae did before the
  fitted samplers), for models with a prior (interface.LatentVariableModel)."""
  kind = "standard"
  description = "p(z), the prior"

  def __init__(self) -> None:
    super().__init__({"kind": "standard"})

  def draw(self, model: Any, n: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
    return model.sample(n, seed)
