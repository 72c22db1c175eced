"""The two_stage sampler: a second VAE trained on the training codes (Dai & Wipf 2019).

Dai & Wipf, "Diagnosing and enhancing VAE models", ICLR 2019, section 4: a VAE's aggregate
posterior q(z) does not match its prior, so samples z ~ p(z) fall where the decoder saw no code.
A second VAE with latent u learns the codes' density (here fitted to the posterior means
E[q(z|x)], as Ghosh et al.'s ex-post estimators, rather than to draws z ~ q(z|x) as the paper); sampling draws u ~ N(0, I), takes the
second decoder's mean z = E[p(z|u)] and decodes z with the first model's decoder.

The second VAE is an ordinary tfvae run (--model=vae, the MLP, vectors): trained by the same
training loop on the codes E[q(z|x)] of the first run's train split (its validation and test
codes as its validation and test splits, --standardize), with the Gaussian likelihood whose
per-dimension scale is fitted (--likelihood=normal: the closed-form optimum of the learned scale
gamma of the paper, here one per code dimension). It is stored as a run folder,
WORKDIR/sampler/two_stage (config.json, ckpt/, eval.json, tensorboard/), and rebuilt from it.
The paper's second stage has latent dimension = code dimension and three 1024-unit layers; the
default here is two layers of 256 (--second_hidden_sizes).
"""

import dataclasses
import os
from typing import Any

import numpy as np
import tensorflow as tf

from tfvae.errors import ConfigError
from tfvae.samplers import base

DIRNAME = "two_stage"


@dataclasses.dataclass(frozen=True)
class TwoStageOptions:
  """The options of --sampler=two_stage: the second VAE and its training.

  Attributes:
    second_latent_dim: dimension of u (0: the code dimension, as the paper).
    second_hidden_sizes: the MLP's hidden layer widths.
    epochs: passes over the train codes (when train_steps is 0).
    train_steps: training length in steps (0: epochs).
    batch_size, learning_rate: Adam's batch and step size.
    seed: the second VAE's weights, batches and noise, an int in 0..2**31 - 1.

  Raises:
    ConfigError: one line naming the flag, for a value of another type (a bool where a number
      is wanted included) or out of range.
  """
  second_latent_dim: int = 0
  second_hidden_sizes: tuple[int, ...] = (256, 256)
  epochs: int = 50
  train_steps: int = 0
  batch_size: int = 128
  learning_rate: float = 1e-3
  seed: int = 0

  def __post_init__(self) -> None:
    if isinstance(self.second_hidden_sizes, (list, tuple)):
      object.__setattr__(self, "second_hidden_sizes", tuple(self.second_hidden_sizes))
    for name, low in (("second_latent_dim", 0), ("epochs", 1), ("train_steps", 0),
                      ("batch_size", 1)):
      base.check_int(name, getattr(self, name), low)
    sizes = self.second_hidden_sizes
    if not isinstance(sizes, tuple) or not sizes or any(
        isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) or s < 1
        for s in sizes):
      shown = ",".join(map(str, sizes)) if isinstance(sizes, tuple) else repr(sizes)
      raise ConfigError(f"--second_hidden_sizes={shown} must be positive integers.")
    base.check_number("learning_rate", self.learning_rate, 0, strict=True)
    base.check_int("seed", self.seed, 0, base.MAX_SEED)
    base.as_python(self)

  def config(self, code_dim: int) -> Any:
    """The second VAE's tfvae.Config, for codes of dimension `code_dim`."""
    from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
    return config_lib.Config(
        model="vae", likelihood="normal", latent_dim=self.second_latent_dim or code_dim,
        hidden_sizes=self.second_hidden_sizes, standardize=True, epochs=self.epochs,
        train_steps=self.train_steps, batch_size=self.batch_size,
        learning_rate=self.learning_rate, seed=self.seed, strategy="one_device")


class TwoStage(base.Sampler):
  """z = E[p(z|u)], u ~ N(0, I), with the second VAE `model` (a tfvae VAE over codes) whose run
  Config is `config` (its --standardize statistics map its outputs back to code units)."""
  kind = "two_stage"
  description = "a second VAE of the codes"

  def __init__(self, model: Any, config: Any, info: dict[str, Any]):
    super().__init__(info)
    self.second = model
    self.second_latent_dim = config.model.latent_dim
    self._mean = tf.constant(config.data.feature_mean or 0.0, tf.float32)
    self._scale = tf.constant(config.data.feature_scale or 1.0, tf.float32)

  @property
  def variables(self) -> list[tf.Variable]:
    return list(self.second.variables)

  def sample_codes(self, n: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """float32 [n, D]: the second decoder's mean at u ~ N(0, I) [n, second_latent_dim], in the
    codes' units."""
    u = tf.random.stateless_normal(tf.stack([n, self.second_latent_dim]), seed=seed)
    return self.second.decode(u).mean() * self._scale + self._mean

  @classmethod
  def fit(cls, codes: dict[str, np.ndarray], options: TwoStageOptions, info: dict[str, Any],
          folder: str) -> "TwoStage":
    """Trains the second VAE on codes["train"] [N, D] (codes["validation"], codes["test"] as its
    held-out splits when not empty) in the run folder `folder` (replaced).

    Raises:
      ConfigError / DataError: of the second run (e.g. --batch_size above the train codes).
    """
    from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
    from tfvae.training import run  # pylint: disable=import-outside-toplevel
    config = options.config(codes["train"].shape[1])
    held_out = {f"x_{split}": codes[split].astype(np.float32)
                for split in ("validation", "test") if len(codes.get(split, ()))}
    source = data_lib.from_arrays(codes["train"].astype(np.float32), **held_out)
    trained = run.train_model(config, folder, overwrite=True, source=source)
    info = {**info, "fit": {"step": trained.results["step"], **{
        f"{split}_elbo": float(trained.results[split]["elbo"])
        for split in ("validation", "test")}}}
    return cls(trained.model, trained.config, info)

  @classmethod
  def load(cls, folder: str, info: dict[str, Any]) -> "TwoStage":
    """The sampler of the second run in FOLDER/two_stage with its record `info`."""
    from tfvae import loading  # pylint: disable=import-outside-toplevel
    config, model, _ = loading.restore_model(os.path.join(folder, DIRNAME))
    return cls(model, config, info)

