"""What every sampler of codes is: its kind, the record stored with it (`info`), its variables
(what an export tracks) and `draw`, which turns a count and a stateless seed into images."""

import dataclasses
import math
from typing import Any, Optional

import numpy as np
import tensorflow as tf

from tfvae.errors import ConfigError

MAX_SEED = 2 ** 31 - 1  # as --seed of a run (tfvae/config_fields.py)


def check_int(name: str, value: Any, low: int, high: Optional[int] = None) -> None:
  """ConfigError naming --`name` unless `value` is an int (not a bool) in [low, high]."""
  if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
      or value < low or (high is not None and value > high)):
    bounds = f">= {low}" if high is None else f"in {low}..{high}"
    raise ConfigError(f"--{name}={value!r} must be an integer {bounds}.")


def check_number(name: str, value: Any, low: float, strict: bool = False) -> None:
  """ConfigError naming --`name` unless `value` is a finite int or float (not a bool) >= low
  (> low when `strict`)."""
  if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating))
      or not (isinstance(value, (int, np.integer)) or math.isfinite(value))
      or value < low or (strict and value == low)):
    raise ConfigError(f"--{name}={value!r} must be a finite number {'>' if strict else '>='} "
                      f"{low:g}.")


def as_python(options: Any) -> None:
  """Replaces numpy scalars among the fields of the frozen dataclass `options` (checked) by
  Python ones, so that sampler.json records them."""
  for field in dataclasses.fields(options):
    value = getattr(options, field.name)
    if isinstance(value, np.generic):
      object.__setattr__(options, field.name, value.item())
    elif isinstance(value, tuple):
      object.__setattr__(options, field.name,
                         tuple(v.item() if isinstance(v, np.generic) else v for v in value))


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
